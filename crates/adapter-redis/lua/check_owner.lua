-- check_owner: is the lease held by this token? Read-only, never renews the TTL.
-- KEYS[1] lease key; ARGV[1] owner token. Returns 1 (owner) or 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
