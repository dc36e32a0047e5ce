-- promote: take the lease for a new leadership, or continue this token's current one.
-- KEYS[1] lease key, KEYS[2] epoch key; ARGV[1] owner token, ARGV[2] ttl in ms,
-- ARGV[3] epoch floor: the highest epoch the caller used before this leadership.
-- Returns the node's epoch, or LOCK_HELD when another token holds the lease (an error that
-- names the key instead when that owner has no time to live: no producer writes one).
-- Re-entrant within one leadership: when this token holds the lease at an epoch above the
-- floor (a promote retried after an unknown outcome, or an expansion to a node already held),
-- the TTL is re-armed and the epoch returned without a change. Otherwise (the lease is free, or
-- this token's key lingers from an earlier leadership whose release never arrived) the lease is
-- taken and the epoch raised to max(epoch, floor) + 1, so every leadership of a process gets an
-- epoch above all it used before, even on a node that lost its data. Epochs are compared as Lua
-- numbers (exact below 2^53) and raised with SET and INCR, which are exact.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  -- Every grant sets a time to live: an owner without one was not written by a producer and
  -- would hold the lease for ever. Still not taken, but said as an error, so the caller's
  -- status names the key instead of reporting a leader that does not exist.
  if redis.call('PTTL', KEYS[1]) == -1 then
    return redis.error_reply('LEASE_WITHOUT_TTL: the lease key holds an owner with no time to live, which no producer writes: delete the key')
  end
  return redis.error_reply('LOCK_HELD: another leader holds the lock')
end
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[3]) or 0
if owner == ARGV[1] and epoch > floor then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return epoch
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if floor > epoch then
  redis.call('SET', KEYS[2], ARGV[3])
end
return redis.call('INCR', KEYS[2])
