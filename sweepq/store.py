"""All of sweepq's state in Redis: sweeps, trials, metric histories, leases, events.

Why a store layer: the controller, the workers, the CLI and the web all read and write the same
records; every state change that more than one process can race on is one Lua script, so two
controllers or two deliveries of one Celery message can never corrupt a trial. Values are JSON or
plain strings, never pickle.

Trial life cycle (each arrow one atomic script)::

    create -> queued --claim--> running --finish--> finished | failed | stopped | canceled
                 ^                 |
                 +---- reap -------+  (lease expired, retries left; else -> crashed)
                 +---- release ----+  (worker shutting down hands the trial back)

A final state never changes again: every script checks the current state (and, for the worker's
writes, that the caller still owns the trial: fencing by owner token).
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from sweepq.errors import BadRedisURL, Conflict, NotFound, Unavailable
from sweepq.ids import is_sweep_id, shown
from sweepq.keys import Keys, namespace_from_env
from sweepq.model import FINAL_STATES, TRIAL_STATES
from sweepq.model import stored_number as _num

# the address probed when SWEEPQ_REDIS_URL is unset (overridable so tests can point it at nothing)
DEFAULT_REDIS_URL = os.environ.get("SWEEPQ_DEFAULT_REDIS_URL") or "redis://127.0.0.1:6379/0"


EVENTS_MAXLEN = 20000
ROWS_CAP = 5000
# Values of the sweep metric kept per trial (about 20 bytes each): a program logging millions of
# steps cannot fill Redis. The first ones are kept, because the stopping rules judge early rungs.
HISTORY_CAP = 100_000
OUTPUT_CAP = 1000  # output lines kept in a running trial's stream (sweepq logs --follow)
OUTPUT_TTL = 3600  # seconds a trial's output stream outlives its last line


# The store's errors are sweepq's (sweepq.errors): each carries its exit code and HTTP status.
StoreError = Conflict  # a request the store refuses: an impossible state change, an id taken
StoreUnavailable = Unavailable


OUT_OF_MEMORY = ("Redis is out of memory (maxmemory reached, policy noeviction) and refuses writes; "
                 "free memory (delete old sweeps) or raise maxmemory")
# Seconds a socket may wait for a reply. Every blocking read sweepq makes is far shorter (a stop
# list is polled for 1 s, the event stream for at most a tick), so a longer silence means the
# connection is dead (a partition, a hung proxy) and the command is retried on a fresh one.
SOCKET_TIMEOUT = 10.0


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1) if "://" in url else ("", url)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def unavailable(exc: BaseException, url: str = "") -> StoreUnavailable | None:
    """The ``StoreUnavailable`` a Redis error means (``None`` if it is not one: a bug of ours)."""
    from redis import exceptions as rx

    where = f" at {redact(url)}" if url else ""
    text = " ".join(str(exc).split())
    if isinstance(exc, StoreUnavailable):
        return exc
    if isinstance(exc, rx.OutOfMemoryError) or text.startswith("OOM "):
        return StoreUnavailable(OUT_OF_MEMORY.replace("Redis", f"Redis{where}", 1))
    if isinstance(exc, rx.ReadOnlyError):
        return StoreUnavailable(f"Redis{where} is a read-only replica and refuses writes; point "
                                "SWEEPQ_REDIS_URL at the primary")
    if isinstance(exc, rx.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return StoreUnavailable(f"Redis{where} refused the credentials ({text}); put the password in "
                                "the URL: redis://:PASSWORD@host:6379/0")
    if "DB index is out of range" in text:
        db = url.rsplit("/", 1)[-1].split("?", 1)[0] if url else "?"
        return BadRedisURL(f"Redis database {db} does not exist{where} (a server has 16 unless "
                           "configured otherwise: /0 to /15)")
    if isinstance(exc, rx.InvalidResponse):
        return StoreUnavailable(f"what answers{where} does not speak the Redis protocol ({text})")
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError)):
        return StoreUnavailable(f"cannot reach Redis{where}: {text or type(exc).__name__}")
    return None


def redis_url_from_env() -> str:
    return os.environ.get("SWEEPQ_REDIS_URL") or DEFAULT_REDIS_URL


def connect(url: str | None = None, **kwargs: Any) -> redis.Redis:
    """A client that rides out Redis restarts and dropped connections and never hangs.

    Retries with exponential backoff on connection errors (redis-py re-connects transparently),
    TCP keepalive, a health check so a half-open connection is noticed, and a socket timeout so a
    command on a connection that went silent (a partition, a hung proxy) fails instead of waiting
    forever. A URL redis-py cannot use raises :class:`BadRedisURL` with one line.
    """
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RConnErr
    from redis.exceptions import TimeoutError as RTimeout
    from redis.retry import Retry

    opts: dict[str, Any] = {
        "decode_responses": True,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "socket_connect_timeout": 5,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        "retry_on_error": [RConnErr, RTimeout],
    }
    opts.update(kwargs)
    url = url or redis_url_from_env()
    if url.startswith(("unix://", "redis+socket://")):
        # a unix socket: kombu's spelling accepted too, and no TCP-only options
        url = "unix://" + url.split("://", 1)[1]
        opts.pop("socket_keepalive", None)
    try:
        return redis.Redis.from_url(url, **opts)
    except ValueError as exc:  # scheme, port, database number
        raise BadRedisURL(f"{redact(url)} is not a usable Redis URL ({exc}); write "
                          "redis://[:PASSWORD@]HOST:PORT/DB, rediss://... or unix:///path") from None


def _new_id(n: int = 8) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------
# Lua scripts. KEYS hold the keys we know up front; trial keys are built from the namespace
# inside the scripts where a loop needs them (single-node Redis, as Celery's Redis transport).
# ---------------------------------------------------------------------------------------------

_XADD = "redis.call('XADD', KEYS[{ev}], 'MAXLEN', '~', {maxlen}, '*', 'sweep', {sid}, 'trial', {tid}, 'kind', {kind})"


# Lease expiries are on Redis's own clock: the worker that renews a lease and the controller that
# reaps it may run on hosts whose clocks disagree, but they agree on the one server's clock.
_NOW = """
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


def _xadd(ev: int, sid: str, tid: str, kind: str) -> str:
    return _XADD.format(ev=ev, maxlen=EVENTS_MAXLEN, sid=sid, tid=tid, kind=kind)


_APPEND_METRICS = """
local nv = tonumber(ARGV[{nv}])
-- the history keeps its first HISTORY_CAP values (what the stopping rules' rungs read); the
-- summary value below still follows every value logged
local room = {hcap} - redis.call('LLEN', KEYS[{hist}])
for i = {first}, math.min({first} - 1 + nv, {first} - 1 + room) do
  redis.call('RPUSH', KEYS[{hist}], ARGV[i])
end
if nv > 0 then
  redis.call('HSET', KEYS[{trial}], 'metric', ARGV[{first} - 1 + nv])
end
local nrows = 0
for i = {first} + nv, #ARGV do
  redis.call('RPUSH', KEYS[{rows}], ARGV[i])
  nrows = nrows + 1
end
if nrows > 0 then
  redis.call('LTRIM', KEYS[{rows}], -tonumber(ARGV[{cap}]), -1)
  redis.call('HINCRBY', KEYS[{trial}], 'steps', nrows)
end
"""


def _append_metrics(*, trial: int, hist: int, rows: int, cap: int, nv: int, first: int) -> str:
    """Lua appending ARGV[nv] metric values (from ARGV[first]) to the history list and the rest of
    ARGV to the rows list (capped at ARGV[cap] rows): shared by the metrics and finish scripts."""
    return _APPEND_METRICS.format(trial=trial, hist=hist, rows=rows, cap=cap, nv=nv, first=first, hcap=HISTORY_CAP)


LUA_CREATE = """
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
if #ids > 0 then
  """ + _xadd(5, "ARGV[2]", "''", "'created'") + """
end
return ids
"""

LUA_CLAIM = _NOW + """
-- KEYS: trial, sweep, counts, inflight, leases, events
-- ARGV: owner, worker, now, log_path (where the worker writes the program's output), tid, sid,
--       gpus, lease_ttl
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing'} end
if st ~= 'queued' then
  -- the same owner asking again (its first answer was lost with a connection): it has the trial
  if st == 'running' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
    return {'ok', redis.call('HGET', KEYS[1], 'attempt'), redis.call('HGET', KEYS[1], 'params')}
  end
  return {'not_queued', st}
end
local sw = redis.call('HGET', KEYS[2], 'state')
if sw == 'paused' then
  -- sent again on resume; the event names it, so the controller need not re-read every trial
  redis.call('HSET', KEYS[1], 'published', 0)
  """ + _xadd(6, "ARGV[6]", "ARGV[5]", "'unpublished'") + """
  return {'paused'}
end
if sw ~= 'running' then
  redis.call('HSET', KEYS[1], 'state', 'canceled', 'ended_at', ARGV[3], 'reason', 'sweep ' .. tostring(sw))
  redis.call('HINCRBY', KEYS[3], 'queued', -1)
  redis.call('HINCRBY', KEYS[3], 'canceled', 1)
  redis.call('SREM', KEYS[4], ARGV[5])
  """ + _xadd(6, "ARGV[6]", "ARGV[5]", "'state'") + """
  return {'canceled'}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'worker', ARGV[2],
  'started_at', ARGV[3], 'stop', '', 'gpus', ARGV[7], 'lease_ttl', ARGV[8], 'log_path', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'queued', -1)
redis.call('HINCRBY', KEYS[3], 'running', 1)
redis.call('ZADD', KEYS[5], redis_now() + tonumber(ARGV[8]), ARGV[5])
""" + _xadd(6, "ARGV[6]", "ARGV[5]", "'started'") + """
return {'ok', tostring(attempt), redis.call('HGET', KEYS[1], 'params')}
"""

LUA_HEARTBEAT = _NOW + """
-- KEYS: trial, leases ; ARGV: owner, lease_ttl, tid
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return {0, ''}
end
redis.call('ZADD', KEYS[2], redis_now() + tonumber(ARGV[2]), ARGV[3])
return {1, redis.call('HGET', KEYS[1], 'stop') or ''}
"""

LUA_METRICS = """
-- KEYS: trial, hist, rows, events
-- ARGV: owner, rows_cap, n_values, sid, tid, values..., rows...
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
""" + _append_metrics(trial=1, hist=2, rows=3, cap=2, nv=3, first=6) + _xadd(4, "ARGV[4]", "ARGV[5]", "'metric'") + """
return 1
"""

LUA_FINISH = """
-- KEYS: trial, counts, inflight, leases, events, sweep, stopq, hist, rows
-- ARGV: owner, new_state, now, exit_code, reason, log_tail, tid, sid, goal, rows_cap, n_values,
--       values..., rows...  (the trial's last unsent metrics: one round trip at the end)
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
""" + _append_metrics(trial=1, hist=8, rows=9, cap=10, nv=11, first=12) + """
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'ended_at', ARGV[3], 'exit_code', ARGV[4],
  'reason', ARGV[5], 'log_tail', ARGV[6])
-- an ended trial keeps only what it reports: the lease and publish bookkeeping and empty fields
-- go (readers default them), ~50 B each on a Redis that stores the hash as a table (docs/benchmarks.md)
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
""" + _xadd(5, "ARGV[8]", "ARGV[7]", "'state'") + """
return 1
"""

LUA_REAP = _NOW + """
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
  """ + _xadd(5, "ARGV[4]", "ARGV[3]", "'state'") + """
  return final
end
if attempt <= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'published', 0, 'metric', '',
    'steps', 0, 'reason', 'retry after: ' .. ARGV[5], 'started_at', '')
  redis.call('DEL', KEYS[6], KEYS[7])
  redis.call('HINCRBY', KEYS[2], 'queued', 1)
  """ + _xadd(5, "ARGV[4]", "ARGV[3]", "'state'") + """
  return 'requeued'
end
redis.call('HSET', KEYS[1], 'state', 'crashed', 'owner', '', 'ended_at', ARGV[1], 'reason', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'crashed', 1)
redis.call('SREM', KEYS[3], ARGV[3])
""" + _xadd(5, "ARGV[4]", "ARGV[3]", "'state'") + """
return 'crashed'
"""

LUA_RELEASE = """
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
  """ + _xadd(4, "ARGV[3]", "ARGV[2]", "'state'") + """
  return 2
end
redis.call('HINCRBY', KEYS[1], 'attempt', -1)
redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'published', 0, 'metric', '', 'steps', 0,
  'reason', ARGV[4], 'started_at', '')
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], 'queued', 1)
""" + _xadd(4, "ARGV[3]", "ARGV[2]", "'state'") + """
return 1
"""

LUA_SWEEP_ACTION = """
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
""" + _xadd(4, "ARGV[2]", "''", "'sweep'") + """
return {'ok', redis.call('HGET', KEYS[1], 'state')}
"""

LUA_REQUEST_STOP = """
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
  """ + _xadd(5, "ARGV[4]", "ARGV[3]", "'state'") + """
  return 'canceled'
end
return 'final'
"""

LUA_UNPUBLISH = """
-- KEYS: trial, events ; ARGV: tid
if redis.call('HGET', KEYS[1], 'state') == 'queued' then
  redis.call('HSET', KEYS[1], 'published', 0)
  local sid = redis.call('HGET', KEYS[1], 'sweep') or ''
  """ + _xadd(2, "sid", "ARGV[1]", "'unpublished'") + """
end
return 1
"""

LUA_EXPIRED = _NOW + """
-- KEYS: leases ; the running trials whose lease is past its expiry, on Redis's clock
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', redis_now())
"""

LUA_CREATE_SWEEP = """
-- KEYS: sweep, sweeps, active, events ; ARGV: sid, created_at, events_maxlen, field, value, ...
-- one script, so a sweep exists whole or not at all (a full Redis refuses it before it starts)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'sweep', ARGV[1], 'trial', '', 'kind', 'sweep')
return 1
"""

LUA_RENEW_LEADER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

LUA_RELEASE_LEADER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_WRITE = "#!lua\n"
_READ_ONLY = "#!lua flags=no-writes\n"
_SCRIPTS = {
    "create": LUA_CREATE, "claim": LUA_CLAIM, "heartbeat": LUA_HEARTBEAT, "metrics": LUA_METRICS,
    "finish": LUA_FINISH, "reap": LUA_REAP, "release": LUA_RELEASE, "sweep_action": LUA_SWEEP_ACTION,
    "request_stop": LUA_REQUEST_STOP, "renew_leader": LUA_RENEW_LEADER, "release_leader": LUA_RELEASE_LEADER,
    "unpublish": LUA_UNPUBLISH, "expired": LUA_EXPIRED, "create_sweep": LUA_CREATE_SWEEP,
}
_READ_SCRIPTS = frozenset({"expired"})  # may run while Redis is out of memory


def client_url(client: redis.Redis) -> str:
    """A URL for a client we were handed without one (tests, fakeredis); best effort."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"redis+socket://{kw['path']}"
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


@dataclass
class Claim:
    """Outcome of a claim: ``ok`` means this caller now owns the trial (attempt n)."""

    status: str
    attempt: int = 0
    state: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    sent_at: float = 0.0  # time.monotonic() when the claim was sent: its lease started after that

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Store:
    """Typed access to sweepq's Redis records. Cheap to create; share one per process."""

    def __init__(self, client: redis.Redis | None = None, namespace: str | None = None,
                 url: str | None = None) -> None:
        self.r = client if client is not None else connect(url)
        # the URL as given (TLS options, escaped passwords intact): the broker defaults to it
        self.url = url or (redis_url_from_env() if client is None else client_url(self.r))
        self.keys = Keys(namespace or namespace_from_env())
        self._scripts: dict[str, Any] | None = None  # registered on first use (no I/O here)
        self._health: tuple[float, str | None] = (-1e9, None)

    def _script(self, name: str) -> Any:
        """The registered Lua script ``name`` (a ``redis.commands.core.Script``).

        On servers that read script flags (Redis >= 7, Valkey) every writing script starts with a
        ``#!lua`` line: a script so marked is refused whole when Redis is out of memory, instead of
        failing at its first memory-growing command after earlier writes (a lease removed, a count
        changed) have already happened. Older servers and fakeredis run them without the line.
        """
        if self._scripts is None:
            try:
                self.r.eval(_READ_ONLY + "return 1", 0)
                write, read = _WRITE, _READ_ONLY
            except redis.exceptions.ResponseError:  # no script flags: Redis < 7, fakeredis
                write = read = ""
            reg = self.r.register_script
            self._scripts = {n: reg((read if n in _READ_SCRIPTS else write) + text) for n, text in _SCRIPTS.items()}
        return self._scripts[name]

    @property
    def ns(self) -> str:
        return self.keys.ns

    # -- sweeps ---------------------------------------------------------------------------------
    def create_sweep(self, config: dict[str, Any], sweep_id: str | None = None) -> str:
        """Register a normalised config as a new running sweep; returns its id."""
        k = self.keys
        sid = sweep_id or _new_id()
        if not is_sweep_id(sid):  # ids are spliced into key names: only ones sweepq could make
            raise StoreError(f"not a sweep id: {shown(sid)} (1-64 lowercase letters and digits)")
        metric = config.get("metric") or {}
        now = time.time()
        fields = {
            "id": sid, "state": "running", "config": json.dumps(config), "method": config.get("method", ""),
            "metric_name": metric.get("name", ""), "goal": metric.get("goal", "minimize"),
            "name": str(config.get("name") or ""), "created_at": now, "next_trial": 0,
        }
        flat = [str(x) for kv in fields.items() for x in kv]
        if not self._script("create_sweep")(keys=[k.sweep(sid), k.sweeps, k.active_sweeps, k.events],
                                            args=[sid, now, EVENTS_MAXLEN, *flat]):
            raise StoreError(f"sweep {sid} already exists")
        return sid

    def sweep_exists(self, sid: str) -> bool:
        return bool(self.r.exists(self.keys.sweep(sid)))

    def get_sweep(self, sid: str) -> dict[str, Any]:
        h = self.r.hgetall(self.keys.sweep(sid))
        if not h:
            raise NotFound(f"unknown sweep {sid!r}")
        h["config"] = json.loads(h.get("config") or "{}")
        h["warnings"] = json.loads(h.get("warnings") or "[]")
        return h

    _HEAD = ("state", "best_value", "best_id", "warnings", "end_reason")

    def _head(self, vals: list[Any]) -> dict[str, Any] | None:
        """The sweep's changing fields without its config (``_HEAD``), None for a missing sweep."""
        if vals[0] is None:
            return None
        head = dict(zip(self._HEAD, vals, strict=True))
        head["warnings"] = json.loads(head["warnings"] or "[]")
        return head

    def pass_snapshot(self, sids: list[str], leases: bool = False, trials: list[str] = (),
                      history: bool = True) -> tuple[list[str], dict[str, tuple[dict[str, Any] | None, set[str]]],
                                                     list[str], dict[str, dict[str, Any]]]:
        """What one controller pass reads, in one round trip: the active sweeps, the head and the
        in-flight ids of each sweep in ``sids`` (None head: the sweep is gone), the expired leases
        if asked, and the records of ``trials`` (those the pass knows it must look at)."""
        k = self.keys
        p = self.r.pipeline(transaction=False)
        p.smembers(k.active_sweeps)
        for sid in sids:
            p.hmget(k.sweep(sid), self._HEAD)
            p.smembers(k.sweep_inflight(sid))
        if leases:
            self._script("expired")(keys=[k.leases], client=p)
        self._read_trials(p, list(trials), history)
        res = p.execute()
        heads = {sid: (self._head(res[1 + 2 * i]), set(res[2 + 2 * i])) for i, sid in enumerate(sids)}
        at = 1 + 2 * len(sids)
        expired = list(res[at]) if leases else []
        at += 1 if leases else 0
        return sorted(res[0]), heads, expired, self._parse_trials(res, at, list(trials), history)

    def sweep_config(self, sid: str) -> dict[str, Any]:
        raw = self.r.hget(self.keys.sweep(sid), "config")
        if raw is None:
            raise NotFound(f"unknown sweep {sid!r}")
        return json.loads(raw)

    def sweep_state(self, sid: str) -> str | None:
        return self.r.hget(self.keys.sweep(sid), "state")

    def list_sweeps(self) -> list[str]:
        return list(self.r.zrange(self.keys.sweeps, 0, -1))

    def active_sweeps(self) -> list[str]:
        return sorted(self.r.smembers(self.keys.active_sweeps))

    def forget_active(self, sid: str) -> None:
        """Take a sweep whose record is gone off the active set."""
        self.r.srem(self.keys.active_sweeps, sid)

    def lease_ttl(self, tid: str, default: float) -> float:
        """The lease TTL the worker running ``tid`` claimed it with."""
        return _num(self.r.hget(self.keys.trial(tid), "lease_ttl")) or default

    def sweep_action(self, sid: str, action: str, reason: str = "") -> str:
        """pause | resume | stop | cancel | fail (with ``reason``: the sweep ends ``failed``, its
        queued trials canceled and its running ones killed); returns the new state or raises
        StoreError."""
        k = self.keys
        res = self._script("sweep_action")(
            keys=[k.sweep(sid), k.sweep_counts(sid), k.sweep_inflight(sid), k.events, k.active_sweeps],
            args=[k.ns, sid, action, time.time(), reason])
        if res[0] == "missing":
            raise NotFound(f"unknown sweep {sid!r}")
        if res[0] == "bad":
            raise StoreError(f"cannot {action} sweep {sid}: it is {res[1]}")
        return res[1]

    def set_sweep_fields(self, sid: str, **fields: Any) -> None:
        self.r.hset(self.keys.sweep(sid), mapping={k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                                                  for k, v in fields.items()})

    def finish_sweep(self, sid: str, state: str = "finished", reason: str = "") -> None:
        """Mark a sweep ended (only from running/stopped/canceled states it keeps its state; a
        failed sweep keeps its reason too)."""
        k = self.keys
        p = self.r.pipeline()
        cur = self.sweep_state(sid)
        if cur == "running":
            p.hset(k.sweep(sid), mapping={"state": state, "ended_at": time.time(), "end_reason": reason})
        elif cur == "failed":
            p.hset(k.sweep(sid), mapping={"ended_at": time.time()})
        else:
            p.hset(k.sweep(sid), mapping={"ended_at": time.time(), "end_reason": reason})
        p.srem(k.active_sweeps, sid)
        p.xadd(k.events, {"sweep": sid, "trial": "", "kind": "sweep"}, maxlen=EVENTS_MAXLEN, approximate=True)
        p.execute()

    def counts(self, sid: str) -> dict[str, int]:
        raw = self.r.hgetall(self.keys.sweep_counts(sid))
        return {s: max(0, int(raw.get(s, 0))) for s in TRIAL_STATES}

    def n_trials(self, sid: str) -> int:
        return int(self.r.zcard(self.keys.sweep_trials(sid)))

    def best(self, sid: str) -> dict[str, Any] | None:
        """The best finished trial by its summary metric (last logged value), or None."""
        h = self.r.hmget(self.keys.sweep(sid), ["best_id", "best_value"])
        if not h[0]:
            return None
        params = self.r.hget(self.keys.trial(h[0]), "params")
        return {"run_id": h[0], "value": float(h[1]), "params": json.loads(params or "{}")}

    def status(self, sid: str) -> dict[str, Any]:
        """The ``status`` JSON shape (docs/dashboard.md, "JSON shapes")."""
        sw = self.get_sweep(sid)
        out = {
            "id": sid, "state": sw["state"], "method": sw.get("method", ""),
            "metric": {"name": sw.get("metric_name") or None, "goal": sw.get("goal") or "minimize"},
            "counts": self.counts(sid), "best": self.best(sid),
        }
        warnings = list(sw.get("warnings", []))
        full = self.memory_full() if out["state"] in ("running", "paused", "stopped", "canceled") else None
        if full:
            warnings.append(full)
        extra = {"name": sw.get("name") or "", "created_at": _num(sw.get("created_at")),
                 "ended_at": _num(sw.get("ended_at")), "trials": self.n_trials(sid),
                 "warnings": warnings, "end_reason": sw.get("end_reason", "")}
        out.update(extra)
        return out

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """:func:`unavailable` for this store's URL."""
        return unavailable(exc, self.url)

    def memory_full(self, max_age: float = 2.0) -> str | None:
        """A one-line warning while Redis is out of memory and refusing writes, else None.

        Nothing can be written to a sweep then, so readers (status, the dashboard) ask Redis itself
        (``INFO memory``, cached ``max_age`` seconds). A server without INFO (fakeredis) is never full.
        """
        at, cached = self._health
        now = time.monotonic()
        if now - at < max_age:
            return cached
        try:
            info = self.r.info("memory")
            limit = int(info.get("maxmemory") or 0)
            full = (limit > 0 and int(info.get("used_memory") or 0) > limit
                    and info.get("maxmemory_policy") == "noeviction")
        except redis.exceptions.ResponseError:
            full = False
        msg = OUT_OF_MEMORY if full else None
        self._health = (now, msg)
        return msg

    # -- trials ---------------------------------------------------------------------------------
    def create_trials(self, sid: str, params_list: list[dict[str, Any]], run_cap: int | None = None,
                      queues: list[str] | None = None, suggest_time: float | None = None) -> list[str]:
        """Create queued trials atomically; never exceeds ``run_cap`` trials in the sweep.

        ``queues`` (one per trial) marks them published there in the same script (the controller
        sends them right after); ``suggest_time`` is recorded for the web's /metrics on the way.
        """
        if not params_list and suggest_time is None:
            return []
        k = self.keys
        qs = list(queues or [])
        qs += [""] * (len(params_list) - len(qs))
        return list(self._script("create")(
            keys=[k.sweep(sid), k.sweep_trials(sid), k.sweep_counts(sid), k.sweep_inflight(sid), k.events,
                  k.suggest_times],
            args=[k.ns, sid, time.time(), int(run_cap or 0),
                  "" if suggest_time is None else f"{suggest_time:.6f}", len(params_list),
                  *[json.dumps(p) for p in params_list], *qs]))

    def unpublish(self, tid: str) -> None:
        """A delivery declined a queued trial (agent at its --count), or its send failed: the
        controller sends it again."""
        self._script("unpublish")(keys=[self.keys.trial(tid), self.keys.events], args=[tid])

    def mark_published_many(self, items: list[tuple[str, str]]) -> None:
        """Mark trials sent to their queues, in one round trip."""
        if not items:
            return
        now = time.time()
        p = self.r.pipeline(transaction=False)
        for tid, queue in items:
            p.hset(self.keys.trial(tid), mapping={"published": 1, "queue": queue, "published_at": now})
        p.execute()

    def claim(self, sid: str, tid: str, owner: str, worker: str, lease_ttl: float, gpus: str = "",
              client: Any = None, log_path: str = "") -> Claim:
        """Take a queued trial (idempotent for the same ``owner``). ``client``: a pipeline to queue
        the claim on; the ``Claim`` then comes from ``claim_result`` of its reply."""
        k = self.keys
        sent = time.monotonic()
        res = self._script("claim")(
            keys=[k.trial(tid), k.sweep(sid), k.sweep_counts(sid), k.sweep_inflight(sid), k.leases, k.events],
            args=[owner, worker, time.time(), log_path, tid, sid, gpus, lease_ttl], client=client)
        return res if client is not None else self.claim_result(res, sent)

    @staticmethod
    def claim_result(res: list[Any], sent_at: float) -> Claim:
        """The ``Claim`` a claim script answered; ``sent_at``: ``time.monotonic()`` before the
        request left, the earliest its lease could have started (the worker's fence counts from it)."""
        if res[0] == "ok":
            return Claim("ok", attempt=int(res[1]), params=json.loads(res[2] or "{}"), sent_at=sent_at)
        return Claim(res[0], state=res[1] if len(res) > 1 else "", sent_at=sent_at)

    def heartbeat(self, tid: str, owner: str, lease_ttl: float) -> tuple[bool, str]:
        """Renew the lease for ``lease_ttl`` seconds from now on Redis's clock; returns
        (still_owner, stop_request)."""
        res = self._script("heartbeat")(keys=[self.keys.trial(tid), self.keys.leases],
                                        args=[owner, lease_ttl, tid])
        return bool(int(res[0])), res[1] or ""

    def log_metrics(self, sid: str, tid: str, owner: str, values: list[float], rows: list[str]) -> bool:
        """Append values of the sweep metric and raw JSON rows (fenced by owner)."""
        if not values and not rows:
            return True
        k = self.keys
        return bool(self._script("metrics")(
            keys=[k.trial(tid), k.trial_history(tid), k.trial_rows(tid), k.events],
            args=[owner, ROWS_CAP, len(values), sid, tid, *[repr(float(v)) for v in values], *rows]))

    def append_output(self, tid: str, lines: list[tuple[str, str]], client: Any = None) -> Any:
        """Add (stream, text) output lines to the trial's output stream (capped, expiring); on
        ``client`` (a pipeline) when given."""
        key = self.keys.trial_output(tid)
        p = client if client is not None else self.r.pipeline(transaction=False)
        for stream, text in lines:
            p.xadd(key, {"s": stream, "l": text}, maxlen=OUTPUT_CAP, approximate=True)
        p.expire(key, OUTPUT_TTL)
        return p.execute() if client is None else None

    def read_output(self, tid: str, after: str = "0-0", block_ms: int | None = None) -> list[tuple[str, str, str]]:
        """(entry id, stream, text) of the output lines after ``after``; waits up to ``block_ms``
        for new ones when given."""
        res = self.r.xread({self.keys.trial_output(tid): after}, block=block_ms, count=1000)
        return [(eid, f.get("s", ""), f.get("l", "")) for _, entries in (res or []) for eid, f in entries]

    def finish_trial(self, sid: str, tid: str, owner: str, state: str, exit_code: int | None,
                     reason: str = "", log_tail: str = "", goal: str = "minimize",
                     values: list[float] | None = None, rows: list[str] | None = None,
                     output: list[tuple[str, str]] | None = None) -> bool:
        """Record the final state; ``values``/``rows`` are metrics not yet sent (as ``log_metrics``)
        and ``output`` output lines not yet streamed, written in the same round trip, so a short
        trial's end costs one."""
        if not output:
            return bool(self._finish_call(sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows))
        p = self.r.pipeline(transaction=False)
        self.append_output(tid, output, client=p)
        self._finish_call(sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows, client=p)
        return bool(p.execute()[-1])

    def finish_and_claim(self, sid: str, tid: str, owner: str, state: str, exit_code: int | None,
                         reason: str = "", log_tail: str = "", goal: str = "minimize",
                         values: list[float] | None = None, rows: list[str] | None = None,
                         output: list[tuple[str, str]] | None = None, *,
                         claim_next: tuple[str, str, str, float, str, str]) -> tuple[bool, Claim]:
        """``finish_trial``, and the claim of the next trial of a batch of short trials
        (``claim_next``: its id, owner, worker, lease TTL, GPUs, log path) in the same round trip.
        The two are independent: the claim is taken whatever the finish found."""
        p = self.r.pipeline(transaction=False)
        if output:
            self.append_output(tid, output, client=p)
        self._finish_call(sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows, client=p)
        nxt, nxt_owner, worker, lease_ttl, gpus, log_path = claim_next
        self.claim(sid, nxt, nxt_owner, worker, lease_ttl, gpus, client=p, log_path=log_path)
        sent = time.monotonic()
        *_, finished, claimed = p.execute()
        return bool(finished), self.claim_result(claimed, sent)

    def _finish_call(self, sid: str, tid: str, owner: str, state: str, exit_code: int | None, reason: str,
                     log_tail: str, goal: str, values: list[float] | None, rows: list[str] | None,
                     client: Any = None) -> Any:
        assert state in FINAL_STATES, state
        k = self.keys
        values, rows = values or [], rows or []
        return self._script("finish")(
            keys=[k.trial(tid), k.sweep_counts(sid), k.sweep_inflight(sid), k.leases, k.events,
                  k.sweep(sid), k.trial_stopq(tid), k.trial_history(tid), k.trial_rows(tid)],
            args=[owner, state, time.time(), "" if exit_code is None else exit_code, reason, log_tail,
                  tid, sid, goal, ROWS_CAP, len(values), *[repr(float(v)) for v in values], *rows],
            client=client)

    def release_trial(self, sid: str, tid: str, owner: str, reason: str) -> bool:
        """Hand a running trial back to the queue without using a retry (worker shutdown)."""
        k = self.keys
        return bool(self._script("release")(
            keys=[k.trial(tid), k.sweep_counts(sid), k.leases, k.events, k.trial_history(tid),
                  k.trial_rows(tid), k.sweep(sid), k.sweep_inflight(sid), k.trial_stopq(tid)],
            args=[owner, tid, sid, reason, time.time()]))

    def expired_leases(self) -> list[str]:
        """Running trials whose lease is past its expiry (on Redis's clock)."""
        return list(self._script("expired")(keys=[self.keys.leases]))

    def reap(self, sid: str, tid: str, retries: int, reason: str) -> str:
        """Requeue (retries left) or crash a running trial whose lease expired."""
        k = self.keys
        return self._script("reap")(
            keys=[k.trial(tid), k.sweep_counts(sid), k.sweep_inflight(sid), k.leases, k.events,
                  k.trial_history(tid), k.trial_rows(tid), k.sweep(sid), k.trial_stopq(tid)],
            args=[time.time(), retries, tid, sid, reason])

    def request_stop(self, sid: str, tid: str, kind: str = "stop") -> str:
        """Ask the worker running ``tid`` to stop it (kind: stop | cancel | timeout)."""
        k = self.keys
        return self._script("request_stop")(
            keys=[k.trial(tid), k.trial_stopq(tid), k.sweep_counts(sid), k.sweep_inflight(sid), k.events],
            args=[kind, time.time(), tid, sid])

    def wait_stop(self, tid: str, timeout: float) -> str | None:
        """Block up to ``timeout`` seconds for a stop request on the trial."""
        res = self.r.blpop([self.keys.trial_stopq(tid)], timeout=max(timeout, 0.01))
        return res[1] if res else None

    def inflight_ids(self, sid: str) -> set[str]:
        return set(self.r.smembers(self.keys.sweep_inflight(sid)))

    def trial_ids(self, sid: str, start: int = 0, stop: int = -1) -> list[str]:
        return list(self.r.zrange(self.keys.sweep_trials(sid), start, stop))

    def get_trials(self, tids: list[str], history: bool = True) -> list[dict[str, Any]]:
        """Trials as dicts (the engine's shape plus record fields), in the order given."""
        out: list[dict[str, Any]] = []
        chunk = 1000
        for i in range(0, len(tids), chunk):
            part = tids[i:i + chunk]
            p = self.r.pipeline(transaction=False)
            self._read_trials(p, part, history)
            out.extend(self._parse_trials(p.execute(), 0, part, history).values())
        return out

    def _read_trials(self, p: Any, tids: list[str], history: bool) -> None:
        """Queue the reads of ``tids``' records on pipeline ``p`` (parsed by ``_parse_trials``)."""
        for tid in tids:
            p.hgetall(self.keys.trial(tid))
            if history:
                p.lrange(self.keys.trial_history(tid), 0, -1)

    def _parse_trials(self, res: list[Any], at: int, tids: list[str], history: bool) -> dict[str, dict[str, Any]]:
        """The records ``_read_trials`` queued, from ``res[at:]``, by id in the order given
        (trials that no longer exist are left out)."""
        step = 2 if history else 1
        out: dict[str, dict[str, Any]] = {}
        for j, tid in enumerate(tids):
            h = res[at + j * step]
            if h:
                out[tid] = self._trial_from_hash(h, [float(x) for x in res[at + j * step + 1]] if history else None)
        return out

    RUN_FIELDS = ("id", "state", "params", "metric", "steps", "started_at", "ended_at", "worker",
                  "exit_code", "attempt", "reason", "gpus")

    def get_runs(self, tids: list[str]) -> list[dict[str, Any]]:
        """The ``run`` JSON shape for many trials, fetching only its fields (``runs --json``)."""
        out: list[dict[str, Any]] = []
        names = list(self.RUN_FIELDS)
        for i in range(0, len(tids), 2000):
            p = self.r.pipeline(transaction=False)
            for tid in tids[i:i + 2000]:
                p.hmget(self.keys.trial(tid), names)
            for vals in p.execute():
                if vals[0] is None:
                    continue
                h = dict(zip(names, vals, strict=True))
                out.append(self.run_json(self._trial_from_hash({k: v for k, v in h.items() if v is not None}, None)))
        return out

    def get_trial(self, tid: str, history: bool = True) -> dict[str, Any]:
        got = self.get_trials([tid], history=history)
        if not got:
            raise NotFound(f"unknown trial {tid!r}")
        return got[0]

    def logged_keys(self, tids: list[str], rows: int = 20) -> list[str]:
        """The metric names the first ``rows`` logged rows of these trials hold (``_step`` aside),
        sorted: what a sweep whose metric was never logged did log."""
        p = self.r.pipeline(transaction=False)
        for tid in tids:
            p.lrange(self.keys.trial_rows(tid), 0, rows - 1)
        keys: set[str] = set()
        for raws in p.execute() if tids else []:
            for raw in raws:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    keys.update(k for k in row if not k.startswith("_"))
        return sorted(keys)

    def trial_rows(self, tid: str, limit: int = ROWS_CAP) -> list[dict[str, Any]]:
        rows = []
        for raw in self.r.lrange(self.keys.trial_rows(tid), -limit, -1):
            try:
                rows.append(json.loads(raw))
            except ValueError:
                continue
        return rows

    @staticmethod
    def _trial_from_hash(h: dict[str, str], hist: list[float] | None) -> dict[str, Any]:
        ec = h.get("exit_code", "")
        t: dict[str, Any] = {
            "id": h["id"], "sweep": h.get("sweep", ""), "n": int(h.get("n", 0)), "state": h.get("state", ""),
            "params": json.loads(h.get("params") or "{}"), "metric": _num(h.get("metric")),
            "steps": int(h.get("steps") or 0), "queued_at": _num(h.get("queued_at")),
            "started_at": _num(h.get("started_at")), "ended_at": _num(h.get("ended_at")),
            "worker": h.get("worker") or None, "exit_code": int(ec) if ec not in ("", None) else None,
            "attempt": int(h.get("attempt") or 0), "reason": h.get("reason", ""),
            "log_tail": h.get("log_tail", ""), "stop": h.get("stop", ""),
            "published": h.get("published") == "1", "queue": h.get("queue", ""), "gpus": h.get("gpus", ""),
            "published_at": _num(h.get("published_at")), "log_path": h.get("log_path", ""),
        }
        if hist is not None:
            t["history"] = hist
        return t

    @staticmethod
    def run_json(t: dict[str, Any]) -> dict[str, Any]:
        """The ``run`` JSON shape (docs/dashboard.md, "JSON shapes")."""
        return {
            "id": t["id"], "state": t["state"], "params": t["params"], "metric": t["metric"],
            "steps": t["steps"], "started_at": t["started_at"], "ended_at": t["ended_at"],
            "worker": t["worker"], "exit_code": t["exit_code"], "attempt": t["attempt"],
            "reason": t["reason"], "gpus": t["gpus"],
        }

    # -- workers --------------------------------------------------------------------------------
    def register_worker(self, name: str, slots: int, queues: list[str], sweep: str = "",
                        gpus: str = "", ttl: float = 30.0) -> None:
        k = self.keys
        p = self.r.pipeline()
        p.hset(k.worker(name), mapping={"name": name, "slots": slots, "queues": json.dumps(queues),
                                        "sweep": sweep, "gpus": gpus, "host": os.uname().nodename,
                                        "pid": os.getpid(), "started_at": time.time()})
        p.expire(k.worker(name), int(ttl * 4))
        p.zadd(k.workers, {name: time.time()})
        p.execute()

    def worker_heartbeat(self, name: str, ttl: float = 30.0) -> None:
        p = self.r.pipeline()
        p.zadd(self.keys.workers, {name: time.time()})
        p.expire(self.keys.worker(name), int(ttl * 4))
        p.execute()

    def unregister_worker(self, name: str) -> None:
        p = self.r.pipeline()
        p.zrem(self.keys.workers, name)
        p.delete(self.keys.worker(name))
        p.execute()

    def alive_workers(self, ttl: float = 30.0) -> list[dict[str, Any]]:
        k = self.keys
        now = time.time()
        self.r.zremrangebyscore(k.workers, "-inf", now - ttl * 4)
        names = self.r.zrangebyscore(k.workers, now - ttl, "+inf")
        if not names:
            return []
        p = self.r.pipeline(transaction=False)
        for n in names:
            p.hgetall(k.worker(n))
        out = []
        for h in p.execute():
            if h:
                h["slots"] = int(h.get("slots") or 1)
                h["queues"] = json.loads(h.get("queues") or "[]")
                out.append(h)
        return out

    # -- controller leadership ------------------------------------------------------------------
    def acquire_leader(self, token: str, ttl_ms: int) -> bool:
        if self.r.set(self.keys.leader, token, nx=True, px=ttl_ms):
            return True
        return bool(self._script("renew_leader")(keys=[self.keys.leader], args=[token, ttl_ms]))

    def release_leader(self, token: str) -> None:
        self._script("release_leader")(keys=[self.keys.leader], args=[token])

    # -- events ---------------------------------------------------------------------------------
    def last_event_id(self) -> str:
        info = self.r.xrevrange(self.keys.events, count=1)
        return info[0][0] if info else "0-0"

    def wait_events(self, last_id: str, timeout: float) -> tuple[str, list[dict[str, str]]]:
        """Block up to ``timeout`` for events after ``last_id``; returns (new_last_id, events)."""
        res = self.r.xread({self.keys.events: last_id}, block=max(1, int(timeout * 1000)), count=1000)
        if not res:
            return last_id, []
        entries = res[0][1]
        return entries[-1][0], [fields for _, fields in entries]

    # -- maintenance ----------------------------------------------------------------------------
    def delete_namespace(self) -> int:
        """Delete every key of this namespace (tests, ``sweepq`` resets)."""
        n = 0
        for key in self.r.scan_iter(match=f"{self.ns}:*", count=1000):
            n += self.r.delete(key)
        return n
