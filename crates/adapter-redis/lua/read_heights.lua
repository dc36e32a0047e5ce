-- read_heights: which block this node's heights index names at each height from ARGV[1] to
-- ARGV[2], without reading a payload: the cheap look of the anti-entropy sweep, which reads in
-- full (read_from) only the heights that look short.
-- KEYS[1] heights index. ARGV[1] lowest height, ARGV[2] highest height, ARGV[3] how many
-- members to examine at most.
-- Every member is untrusted (anyone who reaches the node can write one): a member that does not
-- parse as "<height>:<block id hex>:<stream entry id>" is skipped and counted, and at most
-- ARGV[3] members are examined, so garbage cannot make the read unbounded.
-- Returns { rows, skipped }: rows are {height, block id hex} of each member that parses, lowest
-- heights first; skipped counts the members that did not.
local lowest = tonumber(ARGV[1])
local highest = tonumber(ARGV[2])
local examine_at_most = tonumber(ARGV[3])
if not lowest or not highest or not examine_at_most or examine_at_most <= 0 then
  return { {}, 0 }
end
local members = redis.call('ZRANGEBYSCORE', KEYS[1], lowest, highest, 'LIMIT', 0, examine_at_most)
local rows = {}
local skipped = 0
for _, member in ipairs(members) do
  local height, id = string.match(member, '^(%d+):(%x+):%d+%-%d+$')
  if height then
    table.insert(rows, { height, id })
  else
    skipped = skipped + 1
  end
end
return { rows, skipped }
