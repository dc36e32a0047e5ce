-- install_membership: puts a membership record on this node. KEYS[1] membership record,
-- KEYS[2] server id key, KEYS[3] lease key. ARGV[1] generation, ARGV[2] digest, ARGV[3] member
-- ids (comma-separated, sorted), ARGV[4] number of nodes, ARGV[5] budget, ARGV[6] the digest of
-- the record it succeeds (empty: none), ARGV[7] the installer's lease token (empty: an operator,
-- who installs only while no lease is held here), ARGV[8] and ARGV[9] a joint record's old and
-- new member ids (comma-separated, sorted; both empty for a record of one set), ARGV[10] '1' for
-- an operator's step of a membership change, taken while a lease is held here too: the new
-- record fences the lease's holder on this node at once (every script it sends checks the
-- record first), and a leader of the old set is exactly what the change must fence.
-- Taken when the node already holds it (0), or (1) when:
--   the node holds no record and its server id is a member of the new record (a fresh or wiped
--   node being admitted); or
--   the node holds the record ARGV[6] names at a lower generation and the lease here is free or
--   held by the installer (ARGV[7]; an operator passes none and so needs it free, unless
--   ARGV[10] says the record is a membership change's step).
-- Refused otherwise with MEMBERSHIP: (another record, or a generation not above the node's), or
-- LOCK_HELD: (the lease is held by someone else). A node takes one record per generation, so two
-- different records of one generation never share a node.
local held_digest = redis.call('HGET', KEYS[1], 'digest')
if held_digest == ARGV[2] then
  return 0
end
local function install()
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'digest', ARGV[2], 'members', ARGV[3],
    'size', ARGV[4], 'budget', ARGV[5], 'old', ARGV[8] or '', 'new', ARGV[9] or '')
  return 1
end
if not held_digest then
  local id = redis.call('GET', KEYS[2])
  if id and string.find(',' .. ARGV[3] .. ',', ',' .. id .. ',', 1, true) then
    return install()
  end
  return redis.error_reply('MEMBERSHIP: this node is not a member of the record to install')
end
if ARGV[6] == '' or held_digest ~= ARGV[6] then
  return redis.error_reply('MEMBERSHIP: this node holds membership ' .. string.sub(held_digest, 1, 12)
    .. ', not the one the new record succeeds')
end
local held_generation = tonumber(redis.call('HGET', KEYS[1], 'generation')) or 0
if (tonumber(ARGV[1]) or 0) <= held_generation then
  return redis.error_reply('MEMBERSHIP: the node holds generation ' .. held_generation)
end
-- A lease held here by anyone else (a leader of the record held now) refuses; a free one does
-- not: the generation check above already keeps one record per generation on this node.
local owner = redis.call('GET', KEYS[3])
if owner and owner ~= ARGV[7] and ARGV[10] ~= '1' then
  return redis.error_reply('LOCK_HELD: another leader holds the lock')
end
return install()
