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

    def __init__(
        self, client: redis.Redis | None = None, namespace: str | None = None, url: str | None = None
    ) -> None:
        # Any: with decode_responses every reply is str, which redis-py's types cannot say
        self._r: Any = client if client is not None else connect(url)
        # the URL as given (TLS options, escaped passwords intact): the broker defaults to it
        self.url = url or (redis_url_from_env() if client is None else client_url(self._r))
        self.keys = Keys(namespace or namespace_from_env())
        self._scripts: dict[str, Any] | None = None  # registered on first use (no I/O here)
        # per sweep: (finished count, Pareto front size) of a multi-objective sweep (status)
        self._front_sizes: dict[str, tuple[int, int]] = {}

    @property
    def ns(self) -> str:
        return self.keys.ns

    def _script(self, name: str) -> Any:
        """The registered Lua script ``name`` (see :mod:`sweepq.store.scripts`)."""
        if self._scripts is None:
            self._scripts = scripts.register(self._r)
        return self._scripts[name]

    def _run(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        """Run script ``name``; with ``client`` (a pipeline from :meth:`_pipeline`) queue it there
        as a bare EVALSHA, answered by :meth:`_execute`.

        Why not redis-py's own pipelined scripts: a pipeline holding one asks SCRIPT EXISTS before
        every execution, a second round trip on the paths that exist to cost one (a short trial's
        end, a controller pass)."""
        script = self._script(name)
        if client is None:
            return script(keys=keys, args=args)  # EVALSHA, loaded and retried on NOSCRIPT
        if not hasattr(client, "_sweepq_scripts"):  # someone else's pipeline: redis-py's way
            return script(keys=keys, args=args, client=client)
        client._sweepq_scripts.append((len(client.command_stack), name, keys, args))
        return client.evalsha(script.sha, len(keys), *keys, *args)

    def _pipeline(self, transaction: bool = False) -> Any:
        """A pipeline that :meth:`_run` may queue scripts on."""
        p = self._r.pipeline(transaction=transaction)
        p._sweepq_scripts = []
        return p

    def _execute(self, p: Any) -> list[Any]:
        """Execute pipeline ``p``: one round trip while Redis has the scripts. A script Redis has
        lost (a restart, SCRIPT FLUSH) did not run; it is run again, in order, once loaded (the
        other commands ran, and are not repeated)."""
        calls = p._sweepq_scripts
        if not calls:
            return list(p.execute())
        res = list(p.execute(raise_on_error=False))
        for at, name, keys, args in calls:
            if isinstance(res[at], redis.exceptions.NoScriptError):
                res[at] = self._script(name)(keys=keys, args=args)
        for r in res:
            if isinstance(r, Exception):
                raise r
        return res

    def unavailable(self, exc: BaseException) -> Any:
        """:func:`sweepq.store.connection.unavailable` for this store's URL."""
        return unavailable(exc, self.url)
