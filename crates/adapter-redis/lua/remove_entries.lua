-- remove_entries: deletes the given entries at one height, and the index members at that height
-- that do not parse. Run only for entries the client proved invalid (they fail the chain's
-- verification or do not decode): a valid block is never among them, so this never removes
-- anything a decision could have counted.
-- KEYS[1] block stream, KEYS[2] heights index; ARGV[1] height, ARGV[2..] stream entry ids.
-- Returns the number of stream entries and index members removed.
local removed = 0
local doomed = {}
for i = 2, #ARGV do
  doomed[ARGV[i]] = true
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])) do
  local entry_id = string.match(member, '^%d+:%x+:(%d+%-%d+)$')
  if not entry_id then
    removed = removed + redis.call('ZREM', KEYS[2], member)
  elseif doomed[entry_id] then
    removed = removed + redis.call('ZREM', KEYS[2], member)
    removed = removed + redis.call('XDEL', KEYS[1], entry_id)
  end
end
return removed
