-- Take a queued trial: it becomes running under a fresh owner token, with a lease.
-- KEYS: trial, sweep, counts, inflight, leases, events
-- ARGV: owner, worker, now, log_path (where the worker writes the program's output), tid, sid,
--       gpus, lease_ttl
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing'} end
if st ~= 'queued' then
  -- the same owner asking again (its first answer was lost with a connection): it has the trial
  if st == 'running' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
    return {'ok', redis.call('HGET', KEYS[1], 'attempt'), redis.call('HGET', KEYS[1], 'params')}
  end
  return {'not_queued', st}
end
local sw = redis.call('HGET', KEYS[2], 'state')
if sw == 'paused' then
  -- sent again on resume; the event names it, so the controller need not re-read every trial
  redis.call('HSET', KEYS[1], 'published', 0)
  event(KEYS[6], ARGV[6], ARGV[5], 'unpublished')
  return {'paused'}
end
if sw ~= 'running' then
  redis.call('HSET', KEYS[1], 'state', 'canceled', 'ended_at', ARGV[3], 'reason', 'sweep ' .. tostring(sw))
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'canceled', 1)
  redis.call('SREM', KEYS[4], ARGV[5])
  event(KEYS[6], ARGV[6], ARGV[5], 'state')
  return {'canceled'}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'worker', ARGV[2],
  'started_at', ARGV[3], 'stop', '', 'gpus', ARGV[7], 'lease_ttl', ARGV[8], 'log_path', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'queued', -1)
redis.call('HINCRBY', KEYS[3], 'running', 1)
redis.call('ZADD', KEYS[5], redis_now() + tonumber(ARGV[8]), ARGV[5])
event(KEYS[6], ARGV[6], ARGV[5], 'started')
return {'ok', tostring(attempt), redis.call('HGET', KEYS[1], 'params')}
