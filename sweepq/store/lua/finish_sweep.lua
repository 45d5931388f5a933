-- A sweep's end, in one step: nothing (a user's cancel, a pause) can land between the look at its
-- state and the write. A running or paused sweep takes the state given; a stopped, canceled or
-- finished one keeps its state (an action set it); a failed one keeps its state and its reason.
-- KEYS: sweep, active, events ; ARGV: sid, state, now, reason
local st = redis.call('HGET', KEYS[1], 'state')
redis.call('SREM', KEYS[2], ARGV[1])
if not st then return 'missing' end
if st == 'running' or st == 'paused' then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'ended_at', ARGV[3], 'end_reason', ARGV[4])
  st = ARGV[2]
elseif st == 'failed' then
  redis.call('HSET', KEYS[1], 'ended_at', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'ended_at', ARGV[3], 'end_reason', ARGV[4])
end
event(KEYS[3], ARGV[1], '', 'sweep')
return st
