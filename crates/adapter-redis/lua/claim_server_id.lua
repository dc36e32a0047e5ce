-- claim_server_id: gives this node a server id once. KEYS[1] server id key; ARGV[1] a new
-- random id, ARGV[2] a retired id the new one may overwrite (empty for none: only a node without
-- an id takes it). Returns the id the node holds afterwards: ARGV[1], or the one another process
-- wrote first, which the caller then uses.
local held = redis.call('GET', KEYS[1])
if not held or (ARGV[2] ~= '' and held == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return held
