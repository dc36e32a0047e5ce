-- read_from: stream entries with height >= ARGV[1], lowest heights first, at most ARGV[2] of
-- them. The stream is in append order, not height order (a repair appends lower heights
-- later), so the entries are sorted before the cap is applied.
-- KEYS[1] block stream. Returns an array of {height, epoch, id, data}; fields a hand-written
-- entry lacks come back as empty strings and are rejected by the client. Heights are compared
-- and sorted as Lua numbers (exact below 2^53); they are returned as the stored strings.
local min_height = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
if not min_height or not max_entries or max_entries <= 0 then
  return {}
end
local selected = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fields = entry[2]
  local record = { height = '', epoch = '0', id = '', data = '' }
  for i = 1, #fields, 2 do
    record[fields[i]] = fields[i + 1]
  end
  local height = tonumber(record.height)
  if height and height >= min_height then
    record.number = height
    table.insert(selected, record)
  end
end
table.sort(selected, function(a, b) return a.number < b.number end)
local result = {}
for i = 1, math.min(#selected, max_entries) do
  local record = selected[i]
  result[i] = { record.height, record.epoch, record.id, record.data }
end
return result
