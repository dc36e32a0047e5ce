-- read_membership: this node's server id and membership record, as a process reads them to
-- join (docs/protocol.md, "Membership"). KEYS[1] server id key, KEYS[2] membership record, KEYS[3] lease key.
-- Returns { server id or '', generation, digest, members, size, budget, lease, old, new } with
-- empty strings for a record the node does not hold; lease is '1' while any process holds the
-- lease here (an operator's change waits for none), else ''; old and new are a joint record's
-- two sets (empty for a record of one set). Never writes.
local id = redis.call('GET', KEYS[1]) or ''
local record = redis.call('HMGET', KEYS[2], 'generation', 'digest', 'members', 'size', 'budget', 'old', 'new')
local fields = { id }
for i = 1, 5 do
  fields[i + 1] = record[i] or ''
end
fields[7] = redis.call('EXISTS', KEYS[3]) == 1 and '1' or ''
fields[8] = record[6] or ''
fields[9] = record[7] or ''
return fields
