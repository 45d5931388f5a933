-- pause | resume | stop | cancel | fail a sweep; returns {'ok', state} | {'bad', state} | {'missing'}.
-- KEYS: sweep, counts, inflight, events, active
-- ARGV: ns, sid, action, now, reason (fail only)
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing'} end
local action = ARGV[3]
local final = (st == 'canceled' or st == 'finished' or st == 'failed')
if action == 'pause' then
  if st ~= 'running' and st ~= 'paused' then return {'bad', st} end
  redis.call('HSET', KEYS[1], 'state', 'paused')
elseif action == 'resume' then
  if st ~= 'paused' and st ~= 'running' and st ~= 'stopped' then return {'bad', st} end
  redis.call('HSET', KEYS[1], 'state', 'running', 'ended_at', '')
  redis.call('SADD', KEYS[5], ARGV[2])
elseif action == 'stop' or action == 'cancel' or action == 'fail' then
  if final or (action == 'stop' and st == 'stopped') then return {'bad', st} end
  local new = 'stopped'
  if action == 'cancel' then new = 'canceled' end
  if action == 'fail' then
    -- the sweep cannot go on (its config breaks the controller, its trials all fail): it ends
    -- like a cancel, with the reason shown by status, the API and the dashboard
    new = 'failed'
    action = 'cancel'
    redis.call('HSET', KEYS[1], 'end_reason', ARGV[5])
  end
  redis.call('HSET', KEYS[1], 'state', new)
  local ids = redis.call('SMEMBERS', KEYS[3])
  for _, tid in ipairs(ids) do
    local tkey = ARGV[1] .. ':trial:' .. tid
    local ts = redis.call('HGET', tkey, 'state')
    if ts == 'queued' then
      redis.call('HSET', tkey, 'state', 'canceled', 'ended_at', ARGV[4], 'reason', 'sweep ' .. new)
      redis.call('HINCRBY', KEYS[2], 'queued', -1)
      redis.call('HINCRBY', KEYS[2], 'canceled', 1)
      redis.call('SREM', KEYS[3], tid)
    elseif ts == 'running' and action == 'cancel' then
      redis.call('HSET', tkey, 'stop', 'cancel')
      redis.call('RPUSH', ARGV[1] .. ':trial:' .. tid .. ':stopq', 'cancel')
    end
  end
else
  return {'bad', st}
end
event(KEYS[4], ARGV[2], '', 'sweep')
return {'ok', redis.call('HGET', KEYS[1], 'state')}
