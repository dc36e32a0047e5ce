-- read_from: the entries with height >= ARGV[1], lowest heights first, at most ARGV[2] of them,
-- and this node's highest entry. KEYS[1] block stream, KEYS[2] heights index.
-- The heights index lists heights in order and write_block records each entry's stream id in
-- its member ("<height>:<block id hex>:<stream entry id>"), so entries are fetched one by one
-- with XRANGE id id: the cost follows what is returned, never the size of the stream. Every
-- member is untrusted (anyone who reaches the node can write one): a member that does not parse
-- is skipped and counted, never passed to another command unchecked, and at most
-- 2 * ARGV[2] + 512 members are examined, so garbage cannot make the read unbounded. Heights
-- still indexed but already trimmed from the stream are skipped. An entry whose data is longer
-- than ARGV[3] bytes (the largest block the log carries) comes back without it, with its
-- length: garbage that large cannot make every read carry it.
-- Returns { rows, top, skipped, covered_to, seconds, microseconds }:
--   rows: {height, epoch, id, data, stream entry id} of each entry returned, lowest heights
--        first; an oversized entry's row is {height, epoch, id, '', stream entry id, length};
--   top: the node's highest indexed entry still in the stream as one such row, when it lies
--        above the rows (empty otherwise): evidence of how far the node's log reaches;
--   skipped: members that did not parse;
--   covered_to: -1 when every member from ARGV[1] up was examined, else the highest height
--        examined (the node may hold more above it);
--   seconds, microseconds: the server's TIME, a second opinion on the producers' clocks.
-- Fields a hand-written entry lacks come back as empty strings and are rejected by the client.
local min_height = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
local max_entry_bytes = tonumber(ARGV[3])
local time = redis.call('TIME')
if not min_height or not max_entries or max_entries <= 0 or not max_entry_bytes then
  return { {}, {}, 0, -1, tonumber(time[1]), tonumber(time[2]) }
end
local examine_at_most = 2 * max_entries + 512
local skipped = 0

-- The member's height and stream entry id, or nil when it does not parse.
local function parse(member)
  local height, entry_id = string.match(member, '^(%d+):%x+:(%d+%-%d+)$')
  if not height then
    skipped = skipped + 1
    return nil
  end
  return tonumber(height), entry_id
end

-- The row of a stream entry, or nil when it was trimmed (or the id is not one Redis accepts).
local function row_of(entry_id)
  local entries = redis.pcall('XRANGE', KEYS[1], entry_id, entry_id)
  if type(entries) ~= 'table' or entries.err or #entries ~= 1 then
    return nil
  end
  local fields = entries[1][2]
  local record = { height = '', epoch = '0', id = '', data = '' }
  for i = 1, #fields - 1, 2 do
    record[fields[i]] = fields[i + 1]
  end
  if #record.data > max_entry_bytes then
    return { record.height, record.epoch, record.id, '', entry_id, #record.data }
  end
  return { record.height, record.epoch, record.id, record.data, entry_id }
end

local rows = {}
local highest_row = -1
local examined = 0
local covered_to = -1
local offset = 0
while #rows < max_entries and covered_to == -1 do
  local page = math.min(max_entries, examine_at_most - examined)
  local members = redis.call('ZRANGEBYSCORE', KEYS[2], min_height, '+inf',
    'WITHSCORES', 'LIMIT', offset, page)
  if #members == 0 then
    break
  end
  for i = 1, #members, 2 do
    examined = examined + 1
    local height, entry_id = parse(members[i])
    if height then
      local row = row_of(entry_id)
      if row then
        table.insert(rows, row)
        highest_row = math.max(highest_row, height)
      end
    end
    if #rows == max_entries or examined >= examine_at_most then
      covered_to = tonumber(members[i + 1])
      break
    end
  end
  offset = offset + #members / 2
end

local top = {}
local highest = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', '-inf', 'LIMIT', 0, 1)
if #highest == 1 then
  local height, entry_id = parse(highest[1])
  if height and height > highest_row and height >= min_height then
    top = row_of(entry_id) or {}
  end
end
return { rows, top, skipped, covered_to, tonumber(time[1]), tonumber(time[2]) }
