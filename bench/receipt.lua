-- wrk script: receipts only (the app's side of what the tap measures), a new
-- event id per request. Arguments (after `--`): RUN_ID API_KEY [sdk|key].
-- With `key`, the smallest receipt with a unique Idempotency-Key (what
-- `Client.receipt(provider, event_id, event_type, subject)` sends).
-- With `sdk`, each receipt is the one the SDKs send for the tap's Stripe
-- `invoice.paid` (`receipt_for(event)`: occurred_at and the event's facts in
-- metadata) with a unique Idempotency-Key, as every SDK call carries.
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = string.format("%s_%d_", args[1] or "run", tid)
  sdk = args[3] == "sdk"
  keyed = args[3] == "key"
  headers = {
    ["Authorization"] = "Bearer " .. (args[2] or ""),
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  if sdk then
    local id = prefix .. counter
    headers["Idempotency-Key"] = "idem_" .. id
    return wrk.format("POST", "/v1/receipt", headers,
      '{"provider":"stripe","event_id":"evt_' .. id .. '","event_type":"invoice.paid","subject":"cus_bench",'
      .. '"occurred_at":"2026-12-06T12:00:00Z","metadata":{"object_id":"in_' .. id .. '","object_type":"invoice",'
      .. '"amount":1999,"currency":"USD","status":"paid","fingerprint":"stripe:invoice.paid:in_' .. id .. '"}}')
  end
  if keyed then
    headers["Idempotency-Key"] = "idem_" .. prefix .. counter
  end
  return wrk.format("POST", "/v1/receipt", headers,
    '{"provider":"stripe","event_id":"evt_' .. prefix .. counter .. '","event_type":"invoice.paid","subject":"cus_bench"}')
end
