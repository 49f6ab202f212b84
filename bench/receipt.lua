-- wrk script: receipts only (the app's side of what the tap measures), a new
-- event id per request. Arguments (after `--`): RUN_ID API_KEY.
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
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/receipt", headers,
    '{"provider":"stripe","event_id":"evt_' .. prefix .. counter .. '","event_type":"invoice.paid","subject":"cus_bench"}')
end
