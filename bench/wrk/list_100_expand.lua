-- GET /products?limit=100&expand=category: the first page of 100, each with its category.
request = function()
  return wrk.format("GET", "/products?limit=100&expand=category")
end
