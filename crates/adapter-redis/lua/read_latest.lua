-- read_latest: the highest height stored on this node (not merely the last appended entry:
-- a repair may append a lower height after a higher one). Reads the heights index, which
-- write_block keeps in step with the stream, so the answer costs O(log n).
-- KEYS[1] heights index. Returns the height, or -1 when nothing is stored. The score is a double:
-- exact below 2^53.
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #top == 0 then
  return -1
end
return tonumber(top[2])
