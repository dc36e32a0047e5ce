-- read_latest: the highest height stored on this node (not merely the last appended entry:
-- a repair may append a lower height after a higher one), and this server's clock. Reads the
-- heights index, which write_block keeps in step with the stream, so the answer costs O(log n).
-- KEYS[1] heights index. ARGV: stream entry ids the caller already found invalid on this node
-- (a forged block above the chain): index members naming one of them are passed over, so such
-- an entry does not look like a backlog at every cycle. At most #ARGV + 1 members are read.
-- Returns {height, seconds, microseconds}: the height is -1 when nothing else is stored (a
-- double score: exact below 2^53); the time is the server's TIME, a second opinion on the
-- producers' clocks.
local skip = {}
for _, entry in ipairs(ARGV) do
  skip[entry] = true
end
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, #ARGV + 1)
local time = redis.call('TIME')
local height = -1
for i = 1, #top, 2 do
  local entry = string.match(top[i], ':([^:]*)$')
  if not (entry and skip[entry]) then
    height = tonumber(top[i + 1]) or -1
    break
  end
end
return { height, tonumber(time[1]), tonumber(time[2]) }
