-- GET /products/{id} for random existing ids (1..PRODUCTS, default 10000).
local products = tonumber(os.getenv("PRODUCTS") or "10000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/products/" .. math.random(1, products))
end
