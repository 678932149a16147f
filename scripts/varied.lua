-- wrk script: GET requests cycling through varied paths, one path a line in a file.
--
--   wrk -t2 -c64 -d10s -s scripts/varied.lua http://127.0.0.1:8000 -- paths.txt
--
-- scripts/bench_socket.sh writes the file: 1,000 jittered (length, weight)
-- pairs from the 49 built-in fish, with k cycling through 1, 5, 15, 25, 49.
-- Requests are formatted once in init(), so the script costs wrk almost nothing.
-- Each thread starts at a different offset, so threads do not send in lockstep.

local requests = {}
local i = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 331)
  threads = threads + 1
end

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s varied.lua URL -- PATHS_FILE")
  end
  for line in io.lines(file) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("GET", line)
    end
  end
  if #requests == 0 then
    error("no paths in " .. file)
  end
  i = (offset or 0) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end
