-- A new sweep, whole or not at all (a full Redis refuses the script before it starts).
-- KEYS: sweep, sweeps, active, events ; ARGV: sid, created_at, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
event(KEYS[4], ARGV[1], '', 'sweep')
return 1
