-- wrk script of the `search_http` bench: POST /v1/search with a bearer token, rotating
-- through JSON bodies (one per line of a file).
--
--   wrk -t2 -c16 -d20s --latency -s search_http.lua http://127.0.0.1:PORT -- BODIES TOKEN
--
-- Requests are formatted once in `init`; `request` only picks the next one. No `response`
-- callback (it would make wrk parse every body); wrk counts non-2xx replies itself.

local requests = {}
local next_index = 0

function init(args)
  local path, token = args[1], args[2]
  assert(path and token, "usage: wrk ... -s search_http.lua URL -- BODIES TOKEN")
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", "/v1/search", headers, line)
    end
  end
  file:close()
  assert(#requests > 0, "no request bodies in " .. path)
  -- Threads start at different queries.
  next_index = math.random(#requests) - 1
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
