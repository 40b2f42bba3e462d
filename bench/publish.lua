-- PUT one graph per request, each a new record: bodies come from the JSON Lines file $BODIES.
local bodies, ctids, i = {}, {}, 0
for line in io.lines(os.getenv("BODIES")) do
  bodies[#bodies + 1] = line
  ctids[#ctids + 1] = string.match(line, '"ceterms:ctid":%s*"(ce%-[%x%-]+)"')
end
local headers = {["Content-Type"] = "application/ld+json",
                 ["Authorization"] = "Bearer " .. os.getenv("KEY")}
request = function()
  i = i + 1
  if i > #bodies then i = 1 end  -- past the end the PUTs answer 428: counted as non-2xx
  return wrk.format("PUT", "/graph/" .. ctids[i], headers, bodies[i])
end
