-- GET /products?limit=100: the first page of 100.
request = function()
  return wrk.format("GET", "/products?limit=100")
end
