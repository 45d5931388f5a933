-- A worker hands a running trial back (shutdown, fencing) without using a retry; it ends
-- instead if a stop was pending or its sweep is ending.
-- KEYS: trial, counts, leases, events, hist, rows, sweep, inflight, stopq
-- ARGV: owner, tid, sid, reason, now
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
redis.call('DEL', KEYS[9])
local sw = redis.call('HGET', KEYS[7], 'state')
local stop = redis.call('HGET', KEYS[1], 'stop') or ''
local final = ''
if stop == 'cancel' or sw == 'canceled' then final = 'canceled'
elseif stop ~= '' then final = 'stopped'
elseif sw ~= 'running' and sw ~= 'paused' then final = 'canceled' end
if final ~= '' then
  -- a stop was pending or the sweep is ending: nobody will run it again, it ends here
  redis.call('HSET', KEYS[1], 'state', final, 'owner', '', 'ended_at', ARGV[5],
    'reason', ARGV[4] .. ' (sweep ' .. tostring(sw) .. ')')
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'running', -1)
  redis.call('HINCRBY', KEYS[2], final, 1)
  redis.call('SREM', KEYS[8], ARGV[2])
  event(KEYS[4], ARGV[3], ARGV[2], 'state')
  return 2
end
redis.call('HINCRBY', KEYS[1], 'attempt', -1)
redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'published', 0, 'metric', '', 'steps', 0,
  'reason', ARGV[4], 'started_at', '')
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], 'queued', 1)
event(KEYS[4], ARGV[3], ARGV[2], 'state')
return 1
