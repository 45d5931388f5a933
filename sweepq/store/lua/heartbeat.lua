-- Renew the lease of a running trial its caller owns; returns {owned, stop request}.
-- KEYS: trial, leases ; ARGV: owner, lease_ttl, tid
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return {0, ''}
end
redis.call('ZADD', KEYS[2], redis_now() + tonumber(ARGV[2]), ARGV[3])
return {1, redis.call('HGET', KEYS[1], 'stop') or ''}
