-- renew_lease: does this token hold the lease here? If so, re-arm its TTL.
-- KEYS[1] lease key; ARGV[1] owner token, ARGV[2] ttl in ms. Returns 1 (held, renewed) or 0.
-- A leader renews on its own schedule (every cycle, so also while idle) and with every block
-- it writes; a process that stops cycling (crashed, frozen, cut off) lets the lease expire.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
