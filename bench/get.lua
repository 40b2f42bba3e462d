-- GET /resources/{ctid} over the CTIDs in $CTIDS (one per line) with Accept $ACCEPT.
local ctids, i = {}, 0
for line in io.lines(os.getenv("CTIDS")) do ctids[#ctids + 1] = line end
local headers = {["Accept"] = os.getenv("ACCEPT")}
request = function()
  i = i % #ctids + 1
  return wrk.format("GET", "/resources/" .. ctids[i], headers)
end
