-- POST /products as post.lua, each request with an Idempotency-Key of its own: what keeping
-- the answer with the write costs. Keys are unique across wrk's threads and across runs.
local counter = 0
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  math.randomseed(os.time() + thread_id)
  run_id = os.time() .. "-" .. math.random(1, 1000000000)
end

request = function()
  counter = counter + 1
  local body = '{"name": "Bench product ' .. counter .. '", "price": 19.99, "quantity": 5}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. run_id .. "-" .. thread_id .. "-" .. counter,
  }
  return wrk.format("POST", "/products", headers, body)
end
