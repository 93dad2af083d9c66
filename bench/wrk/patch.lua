-- PATCH /products/{id} on random existing ids, changing the quantity.
local products = tonumber(os.getenv("PRODUCTS") or "10000")
math.randomseed(os.time() + 1)
request = function()
  local body = '{"quantity": ' .. math.random(0, 1000) .. '}'
  return wrk.format("PATCH", "/products/" .. math.random(1, products),
                    {["Content-Type"] = "application/json"}, body)
end
