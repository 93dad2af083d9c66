-- POST /products with a small JSON body (no sku, so writes never conflict).
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"name": "Bench product ' .. counter .. '", "price": 19.99, "quantity": 5}'
  return wrk.format("POST", "/products", {["Content-Type"] = "application/json"}, body)
end
