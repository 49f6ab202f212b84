-- wrk script: a renewal storm. TOTAL receipts for new events, paced to
-- arrive at RATE per second across all connections (each request is due at
-- start + k / RATE; a connection that is free waits until its next request
-- is due, one that is late sends at once), then the thread stops once every
-- answer is in. Arguments (after `--`): RUN_ID API_KEY TOTAL RATE.
-- The clock is LuaJIT's FFI clock_gettime (wrk's delay() takes ms).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } sp_timespec;
  int clock_gettime(int clk_id, sp_timespec *tp);
]]
local ts = ffi.new("sp_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function done(summary, latency, requests)
  -- wrk's own duration is the -d cap; the storm's is first send to last answer.
  local answered, first, last = 0, nil, nil
  for _, thread in ipairs(threads) do
    answered = answered + (thread:get("answered") or 0)
    local s, l = thread:get("start"), thread:get("last")
    if s and (first == nil or s < first) then first = s end
    if l and (last == nil or l > last) then last = l end
  end
  io.write(string.format("storm: %d answers in %.2f s = %.0f/s\n", answered,
    ((last or 0) - (first or 0)) / 1000, answered * 1000 / math.max(1, (last or 0) - (first or 0))))
end

function init(args)
  prefix = string.format("%s_%d_", args[1] or "burst", tid)
  headers = {
    ["Authorization"] = "Bearer " .. (args[2] or ""),
    ["Content-Type"] = "application/json",
  }
  total = tonumber(args[3] or "100000")
  interval = 1000 / tonumber(args[4] or "10000")
  sent, answered, scheduled = 0, 0, 0
  start = nil
end

function delay()
  if start == nil then start = now_ms() end
  scheduled = scheduled + 1
  if scheduled > total then return 3600000 end -- nothing left to send
  local wait = start + (scheduled - 1) * interval - now_ms()
  if wait < 0 then return 0 end
  return math.floor(wait)
end

function request()
  sent = sent + 1
  return wrk.format("POST", "/v1/receipt", headers,
    '{"provider":"stripe","event_id":"evt_' .. prefix .. sent .. '","event_type":"invoice.paid","subject":"cus_bench"}')
end

function response(status, headers, body)
  answered = answered + 1
  last = now_ms()
  if answered >= total then wrk.thread:stop() end
end
