-- wrk script: durable ingest. Each request is a receipt for a new event, then
-- a success result for it (alternating), with a unique event id per thread and
-- run. Arguments (after `--`): RUN_ID API_KEY [DELAY_MS] [IDEMPOTENT]. With
-- DELAY_MS, each connection waits that long before each request (an
-- approximate fixed rate of connections * 1000 / DELAY_MS requests per second,
-- for latency runs). With IDEMPOTENT=1 every request carries its own
-- `Idempotency-Key`, as every SDK call does. With a fifth argument
-- `provider`, event ids are random like a provider's (Stripe's `evt_` and 24
-- letters or digits, so each lands at a random place in the events index)
-- and the idempotency keys are the SDKs' (`sp_idem_`, the time, then a
-- sequence: they sort by time); the receipt's id is reused by the result
-- that follows it.
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
  provider_ids = args[5] == "provider"
  math.randomseed(os.time() * 7919 + tid)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local function provider_id()
  local t = {}
  for i = 1, 24 do
    local n = math.random(1, #alphabet)
    t[i] = alphabet:sub(n, n)
  end
  return table.concat(t)
end
local last_id = nil

function request()
  counter = counter + 1
  local id = prefix .. math.floor((counter + 1) / 2)
  if provider_ids then
    if counter % 2 == 1 then last_id = provider_id() end
    id = last_id
  end
  if idempotent and provider_ids then
    headers["Idempotency-Key"] = string.format("sp_idem_%012x", os.time() * 1000) .. prefix .. counter
  elseif idempotent then
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
