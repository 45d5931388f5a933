-- A running trial's final state, with its last unsent metrics (one round trip at the end).
-- KEYS: trial, counts, inflight, leases, events, sweep, stopq, hist, rows
-- ARGV: owner, new_state, now, exit_code, reason, log_tail, tid, sid, goal, rows_cap, n_values,
--       objectives, values..., rows...
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
append_metrics(KEYS[1], KEYS[8], KEYS[9], tonumber(ARGV[10]), tonumber(ARGV[11]), 13, ARGV[12])
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'ended_at', ARGV[3], 'exit_code', ARGV[4],
  'reason', ARGV[5], 'log_tail', ARGV[6])
-- an ended trial keeps only what it reports: the lease and publish bookkeeping and empty fields
-- go (readers default them), ~50 B each on a Redis that stores the hash as a table
redis.call('HDEL', KEYS[1], 'owner', 'lease_ttl', 'published', 'published_at')
for _, f in ipairs({'stop', 'gpus', 'reason', 'log_tail', 'exit_code'}) do
  if redis.call('HGET', KEYS[1], f) == '' then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('SREM', KEYS[3], ARGV[7])
redis.call('ZREM', KEYS[4], ARGV[7])
redis.call('DEL', KEYS[7])
if ARGV[2] == 'finished' then
  local m = redis.call('HGET', KEYS[1], 'metric')
  if m and m ~= '' then
    local v = tonumber(m)
    local best = redis.call('HGET', KEYS[6], 'best_value')
    local better = (not best) or best == ''
    if not better then
      if ARGV[9] == 'maximize' then better = v > tonumber(best) else better = v < tonumber(best) end
    end
    if better then redis.call('HSET', KEYS[6], 'best_value', m, 'best_id', ARGV[7]) end
  end
end
event(KEYS[5], ARGV[8], ARGV[7], 'state')
return 1
