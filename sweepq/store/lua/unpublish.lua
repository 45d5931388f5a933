-- A delivery declined a queued trial (or its send failed): the controller sends it again.
-- KEYS: trial, events ; ARGV: tid
if redis.call('HGET', KEYS[1], 'state') == 'queued' then
  redis.call('HSET', KEYS[1], 'published', 0)
  event(KEYS[2], redis.call('HGET', KEYS[1], 'sweep') or '', ARGV[1], 'unpublished')
end
return 1
