-- read_latest: the highest height stored on this node (not merely the last appended entry:
-- a repair may append a lower height after a higher one), and this server's clock. Reads the
-- heights index, which write_block keeps in step with the stream, so the answer costs O(log n).
-- KEYS[1] heights index. Returns {height, seconds, microseconds}: the height is -1 when nothing
-- is stored (a double score: exact below 2^53); the time is the server's TIME, a second
-- opinion on the producers' clocks.
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
local time = redis.call('TIME')
local height = -1
if #top > 0 then
  height = tonumber(top[2])
end
return { height, tonumber(time[1]), tonumber(time[2]) }
