"""What every part of the store shares: the client, the key builder, the scripts."""

from __future__ import annotations

from typing import Any

import redis

from sweepq.store import scripts
from sweepq.store.connection import client_url, connect, redis_url_from_env, unavailable
from sweepq.store.keys import Keys, namespace_from_env


class StoreBase:
    """The connection and the key names of one namespace; the parts of :class:`Store` add the
    operations. The Redis client is private: everything above the store asks it by name."""

    def __init__(self, client: redis.Redis | None = None, namespace: str | None = None,
                 url: str | None = None) -> None:
        # Any: with decode_responses every reply is str, which redis-py's types cannot say
        self._r: Any = client if client is not None else connect(url)
        # the URL as given (TLS options, escaped passwords intact): the broker defaults to it
        self.url = url or (redis_url_from_env() if client is None else client_url(self._r))
        self.keys = Keys(namespace or namespace_from_env())
        self._scripts: dict[str, Any] | None = None  # registered on first use (no I/O here)

    @property
    def ns(self) -> str:
        return self.keys.ns

    def _script(self, name: str) -> Any:
        """The registered Lua script ``name`` (see :mod:`sweepq.store.scripts`)."""
        if self._scripts is None:
            self._scripts = scripts.register(self._r)
        return self._scripts[name]

    def unavailable(self, exc: BaseException) -> Any:
        """:func:`sweepq.store.connection.unavailable` for this store's URL."""
        return unavailable(exc, self.url)
