-- release: delete the lease only if this token holds it. Never touches the epoch.
-- KEYS[1] lease key; ARGV[1] owner token. Returns 1 (released) or 0 (not the owner).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
