-- wrk script: the provider tap. Each request is one pre-signed Stripe
-- delivery read from a file (one per line: `Stripe-Signature<TAB>body`), a
-- new event id each, cycling if the file runs out (later ones then answer as
-- duplicates). Arguments (after `--`): FILE PATH [DELAY_MS].
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  deliveries = {}
  for line in io.lines(args[1]) do
    local tab = string.find(line, "\t", 1, true)
    deliveries[#deliveries + 1] = { string.sub(line, 1, tab - 1), string.sub(line, tab + 1) }
  end
  path = args[2]
  delay_ms = tonumber(args[3] or "0")
  next_index = 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  next_index = next_index % #deliveries + 1
  local d = deliveries[next_index]
  headers["Stripe-Signature"] = d[1]
  return wrk.format("POST", path, headers, d[2])
end

function delay()
  return delay_ms
end
