-- Append what a running trial logged (fenced: only its owner's writes count).
-- KEYS: trial, hist, rows, events
-- ARGV: owner, rows_cap, n_values, sid, tid, objectives, values..., rows...
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
append_metrics(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[2]), tonumber(ARGV[3]), 7, ARGV[6])
event(KEYS[4], ARGV[4], ARGV[5], 'metric')
return 1
