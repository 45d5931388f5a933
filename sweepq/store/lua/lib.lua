-- Prepended to every script when the store registers it: constants, and what several scripts do.
local EVENTS_MAXLEN = @EVENTS_MAXLEN@
local HISTORY_CAP = @HISTORY_CAP@

-- Redis's own clock: lease expiries are judged on one clock, whatever host renews or reaps them
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- one change on the event stream, which wakes the controller and the dashboard's caches
local function event(stream, sid, tid, kind)
  redis.call('XADD', stream, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'sweep', sid, 'trial', tid, 'kind', kind)
end

-- ARGV[first .. first + nv - 1] are values of the sweep metric, ARGV[first + nv ..] logged rows.
-- The history keeps its first HISTORY_CAP values (what the stopping rules' rungs read); the
-- summary value still follows every value logged; the rows keep their last rows_cap. objs, when
-- not empty, is the JSON object {name: value} of a multi-objective trial's summary values (the
-- worker keeps them).
local function append_metrics(trial, hist, rows, rows_cap, nv, first, objs)
  if objs ~= '' then
    redis.call('HSET', trial, 'objectives', objs)
  end
  local room = HISTORY_CAP - redis.call('LLEN', hist)
  for i = first, math.min(first - 1 + nv, first - 1 + room) do
    redis.call('RPUSH', hist, ARGV[i])
  end
  if nv > 0 then
    redis.call('HSET', trial, 'metric', ARGV[first - 1 + nv])
  end
  local nrows = 0
  for i = first + nv, #ARGV do
    redis.call('RPUSH', rows, ARGV[i])
    nrows = nrows + 1
  end
  if nrows > 0 then
    redis.call('LTRIM', rows, -rows_cap, -1)
    redis.call('HINCRBY', trial, 'steps', nrows)
  end
end
