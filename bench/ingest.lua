-- wrk script: durable ingest. Each request is a receipt for a new event, then
-- a success result for it (alternating), with a unique event id per thread and
-- run. Arguments (after `--`): RUN_ID API_KEY [DELAY_MS] [IDEMPOTENT]. With
-- DELAY_MS, each connection waits that long before each request (an
-- approximate fixed rate of connections * 1000 / DELAY_MS requests per second,
-- for latency runs). With IDEMPOTENT=1 every request carries its own
-- `Idempotency-Key`, as every SDK call does.
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = string.format("%s_%d_", args[1] or "run", tid)
  headers = {
    ["Authorization"] = "Bearer " .. (args[2] or ""),
    ["Content-Type"] = "application/json",
  }
  delay_ms = tonumber(args[3] or "0")
  idempotent = args[4] == "1"
end

function request()
  counter = counter + 1
  local id = prefix .. math.floor((counter + 1) / 2)
  if idempotent then
    headers["Idempotency-Key"] = "k_" .. prefix .. counter
  end
  if counter % 2 == 1 then
    return wrk.format("POST", "/v1/receipt", headers,
      '{"provider":"stripe","event_id":"evt_' .. id .. '","event_type":"invoice.paid","subject":"cus_bench"}')
  else
    return wrk.format("POST", "/v1/result", headers,
      '{"provider":"stripe","event_id":"evt_' .. id .. '","status":"success"}')
  end
end

function delay()
  return delay_ms
end
