-- membership_check: put in front of every script of the protocol that reads or writes the log or
-- the lease (not release, which only deletes the caller's own token). KEYS[1] this node's server
-- id key, KEYS[2] its membership record (a hash); ARGV[1] the server id the caller read at this
-- URL when it joined, ARGV[2] the digest of the record it joined. When either differs (the node
-- was wiped, restored from before a change, replaced, or the caller's node list maps to another
-- set of servers) it refuses with MEMBERSHIP:, which is never a grant, never a write and never a
-- vote. Otherwise the script below it sees the remaining keys and arguments as KEYS and ARGV.
local membership_keys, membership_args = KEYS, ARGV
local held_id = redis.call('GET', membership_keys[1])
if held_id ~= membership_args[1] then
  return redis.error_reply('MEMBERSHIP: this node is server ' .. string.sub(tostring(held_id or 'none'), 1, 8)
    .. ', the caller expects ' .. string.sub(membership_args[1], 1, 8))
end
local held_digest = redis.call('HGET', membership_keys[2], 'digest')
if held_digest ~= membership_args[2] then
  return redis.error_reply('MEMBERSHIP: this node holds membership ' .. string.sub(tostring(held_digest or 'none'), 1, 12)
    .. ', the caller joined ' .. string.sub(membership_args[2], 1, 12))
end
local KEYS = { unpack(membership_keys, 3) }
local ARGV = { unpack(membership_args, 3) }
