"""Connecting to Redis, and naming what goes wrong with it in one line.

Every client sweepq makes comes from :func:`connect`: it retries through restarts, keeps TCP
alive, health-checks idle connections and never waits forever on a silent one. Whatever Redis
answers with (out of memory, read-only, wrong password, no such database, not Redis at all) is
turned by :func:`unavailable` into one :class:`sweepq.errors.Unavailable` line that names the
cause and the fix, for the CLI (exit code) and the API (HTTP 503).
"""

from __future__ import annotations

import os
from typing import Any

import redis

from sweepq.errors import BadRedisURL, Unavailable

# the address probed when SWEEPQ_REDIS_URL is unset (overridable so tests can point it at nothing)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

OUT_OF_MEMORY = (
    "Redis is out of memory (maxmemory reached, policy noeviction) and refuses writes; "
    "free memory (delete old sweeps) or raise maxmemory"
)
# Seconds a socket may wait for a reply. Every blocking read sweepq makes is far shorter (a stop
# list is polled for 1 s, the event stream for at most a tick), so a longer silence means the
# connection is dead (a partition, a hung proxy) and the command is retried on a fresh one.
SOCKET_TIMEOUT = 10.0


def redis_url_from_env() -> str:
    return (
        os.environ.get("SWEEPQ_REDIS_URL") or os.environ.get("SWEEPQ_DEFAULT_REDIS_URL") or DEFAULT_REDIS_URL
    )


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1) if "://" in url else ("", url)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def unavailable(exc: BaseException, url: str = "") -> Unavailable | None:
    """The :class:`Unavailable` a Redis error means (``None`` if it is not one: a bug of ours)."""
    from redis import exceptions as rx

    where = f" at {redact(url)}" if url else ""
    text = " ".join(str(exc).split())
    if isinstance(exc, Unavailable):
        return exc
    if isinstance(exc, rx.OutOfMemoryError) or text.startswith("OOM "):
        return Unavailable(OUT_OF_MEMORY.replace("Redis", f"Redis{where}", 1))
    if isinstance(exc, rx.ReadOnlyError):
        return Unavailable(
            f"Redis{where} is a read-only replica and refuses writes; point SWEEPQ_REDIS_URL at the primary"
        )
    if isinstance(exc, rx.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return Unavailable(
            f"Redis{where} refused the credentials ({text}); put the password in "
            "the URL: redis://:PASSWORD@host:6379/0"
        )
    if "DB index is out of range" in text:
        db = url.rsplit("/", 1)[-1].split("?", 1)[0] if url else "?"
        return BadRedisURL(
            f"Redis database {db} does not exist{where} (a server has 16 unless "
            "configured otherwise: /0 to /15)"
        )
    if isinstance(exc, rx.InvalidResponse):
        return Unavailable(f"what answers{where} does not speak the Redis protocol ({text})")
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError)):
        return Unavailable(f"cannot reach Redis{where}: {text or type(exc).__name__}")
    return None


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
        raise BadRedisURL(
            f"{redact(url)} is not a usable Redis URL ({exc}); write "
            "redis://[:PASSWORD@]HOST:PORT/DB, rediss://... or unix:///path"
        ) from None


def probe(url: str, timeout: float = 2.0) -> None:
    """One quick try of the server at ``url`` (the store's own client retries for seconds): return
    if it answers, raise its trouble named in one line (:class:`Unavailable`) otherwise."""
    try:
        client = connect(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None, retry_on_error=[]
        )
        try:
            client.ping()
        finally:
            client.close()
    except Unavailable:
        raise
    except Exception as exc:
        named = unavailable(exc, url)
        if named is None:
            raise
        raise named from None


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a usable Redis answers at ``url`` within ``timeout`` seconds."""
    try:
        probe(url, timeout)
    except Exception:
        return False
    return True


def shutdown_server(url: str, timeout: float = 5.0) -> None:
    """Ask the server at ``url`` to save and exit (the embedded server ``sweepq run`` owns)."""
    connect(url, socket_timeout=timeout, retry=None, retry_on_error=[]).shutdown(nosave=False)


def client_url(client: redis.Redis) -> str:
    """A URL for a client we were handed without one (tests, fakeredis); best effort."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"redis+socket://{kw['path']}"
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
