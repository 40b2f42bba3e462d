-- GET /search over the query strings in $QUERIES (one "?..." per line), round robin.
local queries, i = {}, 0
for line in io.lines(os.getenv("QUERIES")) do queries[#queries + 1] = line end
request = function()
  i = i % #queries + 1
  return wrk.format("GET", "/search" .. queries[i])
end
