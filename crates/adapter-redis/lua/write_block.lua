-- write_block: the fenced, height-unique append of one block (docs/protocol.md, "Server-side
-- scripts"). The same rules as poa_quorum::script::write_block, checked against this script by
-- a test.
-- KEYS[1] lease key, KEYS[2] epoch key, KEYS[3] block stream, KEYS[4] heights index,
-- KEYS[5] trim floor (the highest height ever trimmed from the index).
-- ARGV[1] writer epoch, ARGV[2] owner token, ARGV[3] height, ARGV[4] block id (hex),
-- ARGV[5] encoded block, ARGV[6] ttl in ms, ARGV[7] stream max length,
-- ARGV[8] heights kept in the index, ARGV[9] the block id this write may replace at the height
-- (empty for an ordinary write): a repair's, where the writer read every node and proved that
-- no block at the height can be committed.
-- Returns the new stream entry id (written) or the integer 0 (this block is already stored at
-- this height). Refusals are error replies with the prefixes FENCING_ERROR: / HEIGHT_EXISTS: /
-- HEIGHT_TRIMMED:.
-- Heights and epochs are compared as Lua numbers (doubles) and heights are sorted-set scores
-- (doubles): exact below 2^53. Beyond it a comparison may round: a false HEIGHT_EXISTS (a stall,
-- never a fork) or a stale epoch not refused (the owner check of step 1 still fences).
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('FENCING_ERROR: lock lost or held by another node')
end
local node_epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = tonumber(ARGV[1])
if epoch < node_epoch then
  return redis.error_reply('FENCING_ERROR: token is stale')
end
if epoch > node_epoch then
  -- Heal upward; Redis does not roll this back if a later step refuses.
  redis.call('SET', KEYS[2], ARGV[1])
end
-- Index members are "<height>:<block id>:<stream entry id>", so one lookup answers "is this
-- height stored, and is it this block?" without reading payloads, and read_from finds the entry
-- without walking the stream.
local stored = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[3], ARGV[3], 'LIMIT', 0, 1)
if #stored > 0 then
  local stored_id = string.match(stored[1], '^[^:]*:([^:]*)')
  if stored_id == ARGV[4] then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    return 0
  end
  if ARGV[9] == '' or stored_id ~= ARGV[9] then
    return redis.error_reply('HEIGHT_EXISTS: height ' .. ARGV[3] .. ' holds another block')
  end
  -- The block this write replaces: its member and its stream entry go.
  local replaced_entry = string.match(stored[1], '^[^:]*:[^:]*:(%d+%-%d+)$')
  redis.call('ZREM', KEYS[4], stored[1])
  if replaced_entry then
    redis.call('XDEL', KEYS[3], replaced_entry)
  end
end
-- A height that left the index may have held another block: this node can no longer tell, so
-- it takes nothing there (a write below the kept heights could otherwise put a second block at
-- a committed height on a quorum).
local height = tonumber(ARGV[3])
local floor = tonumber(redis.call('GET', KEYS[5]) or '-1') or -1
if height <= floor then
  return redis.error_reply('HEIGHT_TRIMMED: height ' .. ARGV[3] .. ' is below the heights this node keeps')
end
local time = redis.call('TIME')
local entry = redis.call('XADD', KEYS[3], '*',
  'height', ARGV[3], 'id', ARGV[4], 'epoch', ARGV[1], 'data', ARGV[5], 'timestamp', time[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[3] .. ':' .. ARGV[4] .. ':' .. entry)
redis.call('XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[7])
-- Beyond the kept heights, the highest member to go raises the floor, then the lowest go.
local highest_trimmed = redis.call('ZREVRANGEBYSCORE', KEYS[4], '+inf', '-inf',
  'WITHSCORES', 'LIMIT', ARGV[8], 1)
if #highest_trimmed > 0 then
  if tonumber(highest_trimmed[2]) > floor then
    redis.call('SET', KEYS[5], highest_trimmed[2])
  end
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[8]) - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return entry
