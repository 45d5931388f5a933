-- Ask the worker running a trial to stop it; a queued trial is canceled at once.
-- KEYS: trial, stopq, counts, inflight, events ; ARGV: kind, now, tid, sid
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'running' then
  if (redis.call('HGET', KEYS[1], 'stop') or '') == '' then
    redis.call('HSET', KEYS[1], 'stop', ARGV[1], 'stop_requested_at', ARGV[2])
    redis.call('RPUSH', KEYS[2], ARGV[1])
    return 'requested'
  end
  return 'pending'
elseif st == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'canceled', 'ended_at', ARGV[2], 'reason', ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'canceled', 1)
  redis.call('SREM', KEYS[4], ARGV[3])
  event(KEYS[5], ARGV[4], ARGV[3], 'state')
  return 'canceled'
end
return 'final'
