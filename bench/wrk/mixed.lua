-- Mixed load: 80% reads (GET one), 20% writes (half POST, half PATCH).
local products = tonumber(os.getenv("PRODUCTS") or "10000")
local counter = 0
math.randomseed(os.time() + 2)
request = function()
  local roll = math.random(1, 10)
  if roll <= 8 then
    return wrk.format("GET", "/products/" .. math.random(1, products))
  elseif roll == 9 then
    counter = counter + 1
    local body = '{"name": "Mixed product ' .. counter .. '", "price": 9.5}'
    return wrk.format("POST", "/products", {["Content-Type"] = "application/json"}, body)
  end
  local body = '{"quantity": ' .. math.random(0, 1000) .. '}'
  return wrk.format("PATCH", "/products/" .. math.random(1, products),
                    {["Content-Type"] = "application/json"}, body)
end
