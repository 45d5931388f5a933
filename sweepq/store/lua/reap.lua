-- A running trial whose lease expired: requeued while it has retries, else crashed; ended if a
-- stop was pending or its sweep is ending.
-- KEYS: trial, counts, inflight, leases, events, hist, rows, sweep, stopq
-- ARGV: now, retries, tid, sid, reason
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'running' then
  redis.call('ZREM', KEYS[4], ARGV[3])
  return 'gone'
end
local exp = redis.call('ZSCORE', KEYS[4], ARGV[3])
if exp and tonumber(exp) > redis_now() then return 'alive' end
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('DEL', KEYS[9])
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '1')
redis.call('HINCRBY', KEYS[2], 'running', -1)
-- a trial that was being stopped, or whose sweep is ending, is not run again
local stop = redis.call('HGET', KEYS[1], 'stop') or ''
local sw = redis.call('HGET', KEYS[8], 'state')
local final = ''
if stop == 'cancel' or sw == 'canceled' then final = 'canceled'
elseif stop ~= '' then final = 'stopped'
elseif sw ~= 'running' and sw ~= 'paused' then final = 'canceled' end
if final ~= '' then
  redis.call('HSET', KEYS[1], 'state', final, 'owner', '', 'ended_at', ARGV[1],
    'reason', ARGV[5] .. ' while ' .. (stop ~= '' and ('a ' .. stop .. ' was pending') or ('sweep ' .. tostring(sw))))
  redis.call('HINCRBY', KEYS[2], final, 1)
  redis.call('SREM', KEYS[3], ARGV[3])
  event(KEYS[5], ARGV[4], ARGV[3], 'state')
  return final
end
if attempt <= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'published', 0, 'metric', '',
    'steps', 0, 'reason', 'retry after: ' .. ARGV[5], 'started_at', '')
  redis.call('DEL', KEYS[6], KEYS[7])
  redis.call('HINCRBY', KEYS[2], 'queued', 1)
  event(KEYS[5], ARGV[4], ARGV[3], 'state')
  return 'requeued'
end
redis.call('HSET', KEYS[1], 'state', 'crashed', 'owner', '', 'ended_at', ARGV[1], 'reason', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'crashed', 1)
redis.call('SREM', KEYS[3], ARGV[3])
event(KEYS[5], ARGV[4], ARGV[3], 'state')
return 'crashed'
