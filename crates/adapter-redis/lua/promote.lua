-- promote: take the lease if it is free and raise the fencing epoch.
-- KEYS[1] lease key, KEYS[2] epoch key; ARGV[1] owner token, ARGV[2] ttl in ms.
-- Returns the node's epoch. Re-entrant: if this token already holds the lease, the TTL is
-- re-armed and the current epoch returned without INCR, so a promote retried after an unknown
-- outcome cannot raise the epoch twice. The re-entrant path returns the epoch through a Lua
-- number: exact below 2^53 (INCR adds one per leadership, so never reached in practice).
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if owner then
  return redis.error_reply('LOCK_HELD: another leader holds the lock')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
