-- Create queued trials, never more than run_cap in the sweep.
-- KEYS: sweep, trials, counts, inflight, events, suggest_times
-- ARGV: ns, sid, now, run_cap (0 = none), suggest_time ('' = none), n, params_json x n, queue x n
--   a queue ('' = not yet) marks the trial published there: the controller sends right after,
--   and unmarks it if the send fails (a lost send is caught by the controller's re-send)
local st = redis.call('HGET', KEYS[1], 'state')
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[6], ARGV[5])
  redis.call('LTRIM', KEYS[6], -1000, -1)
end
if st ~= 'running' then return {} end
local cap = tonumber(ARGV[4])
local n = tonumber(ARGV[6])
local ids = {}
for i = 1, n do
  if cap > 0 and redis.call('ZCARD', KEYS[2]) >= cap then break end
  local k = redis.call('HINCRBY', KEYS[1], 'next_trial', 1)
  local tid = ARGV[2] .. '-' .. k
  local q = ARGV[6 + n + i] or ''
  local key = ARGV[1] .. ':trial:' .. tid
  redis.call('HSET', key, 'id', tid, 'sweep', ARGV[2], 'n', k,
    'state', 'queued', 'params', ARGV[6 + i], 'steps', 0, 'attempt', 0, 'queued_at', ARGV[3],
    'published', (q ~= '') and 1 or 0)
  if q ~= '' then redis.call('HSET', key, 'queue', q, 'published_at', ARGV[3]) end
  redis.call('ZADD', KEYS[2], k, tid)
  redis.call('SADD', KEYS[4], tid)
  redis.call('HINCRBY', KEYS[3], 'queued', 1)
  ids[#ids + 1] = tid
end
if #ids > 0 then event(KEYS[5], ARGV[2], '', 'created') end
return ids
