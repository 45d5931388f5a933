-- The running trials whose lease is past its expiry, on Redis's clock. KEYS: leases
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', redis_now())
