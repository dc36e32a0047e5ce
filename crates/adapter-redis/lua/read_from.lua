-- read_from: stream entries with height >= ARGV[1], lowest heights first, at most ARGV[2] of
-- them. KEYS[1] block stream, KEYS[2] heights index.
-- The heights index lists heights in order and write_block records each entry's stream id in
-- its member ("<height>:<block id>:<stream entry id>"), so the entries are fetched one by one
-- with XRANGE id id: the cost follows what is returned, never the size of the stream (a walk
-- of a stream of large blocks outlasts the node timeout and stalls every reader). Heights
-- still indexed but already trimmed from the stream are skipped. A member without an entry id
-- (written by hand, or by a write_block before entry ids were indexed) falls back to walking
-- the whole stream, sorted by height (the stream is in append order, not height order: a
-- repair appends lower heights later).
-- Returns an array of {height, epoch, id, data}; fields a hand-written entry lacks come back
-- as empty strings and are rejected by the client. Heights are compared and sorted as Lua
-- numbers (exact below 2^53); they are returned as the stored strings.
local min_height = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
if not min_height or not max_entries or max_entries <= 0 then
  return {}
end

local function record_of(entry)
  local fields = entry[2]
  local record = { height = '', epoch = '0', id = '', data = '' }
  for i = 1, #fields, 2 do
    record[fields[i]] = fields[i + 1]
  end
  record.number = tonumber(record.height)
  return record
end

local function row(record)
  return { record.height, record.epoch, record.id, record.data }
end

local function walk_whole_stream()
  local selected = {}
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
    local record = record_of(entry)
    if record.number and record.number >= min_height then
      table.insert(selected, record)
    end
  end
  table.sort(selected, function(a, b) return a.number < b.number end)
  local result = {}
  for i = 1, math.min(#selected, max_entries) do
    result[i] = row(selected[i])
  end
  return result
end

local result = {}
local offset = 0
while #result < max_entries do
  local members = redis.call('ZRANGEBYSCORE', KEYS[2], min_height, '+inf',
    'LIMIT', offset, max_entries)
  if #members == 0 then
    break
  end
  for _, member in ipairs(members) do
    local entry_id = string.match(member, '^[^:]*:[^:]*:(.+)$')
    if not entry_id then
      return walk_whole_stream()
    end
    local entries = redis.call('XRANGE', KEYS[1], entry_id, entry_id)
    if #entries == 1 then
      local record = record_of(entries[1])
      if record.number and record.number >= min_height then
        table.insert(result, row(record))
        if #result == max_entries then
          break
        end
      end
    end
  end
  offset = offset + #members
end
return result
