"""The store's contract suite runs every test once per backend, as Optuna runs its storage tests
over each storage: ``fakeredis`` (in process, Lua through lupa) and ``redis`` (the real server of
``tests/conftest.py``'s ``redis_server``: 127.0.0.1:6379 database 9 unless told otherwise).

Each test gets a fresh random key namespace; on the real server its keys are deleted at teardown.
A test reaches under the store (``Backend.raw``) only for what the contract is about but the store
does not expose (a lease's expiry score, Redis's clock, a worker's heartbeat score, kombu's lists)
or to play what cannot be asked of it (time passing, a damaged record). Where the two backends
differ (INFO, script flags) the test asserts each backend's answer rather than skipping one; what
only a real server has (a full Redis) is in test_full_redis.py, parametrized over it alone.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
import redis

from sweepq.config import load_config
from sweepq.model import TRIAL_STATES
from sweepq.store import Keys, Store, scripts

BACKENDS = [
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@dataclass
class Backend:
    """One backend under test: its name, the namespace of this test and a raw client on the same
    data (not through the store)."""

    name: str
    ns: str
    raw: redis.Redis
    make_client: Callable[[], redis.Redis] | None  # fakeredis: a new client on the same server
    url: str | None  # the real server

    @property
    def real(self) -> bool:
        return self.name == "redis"

    @property
    def keys(self) -> Keys:
        return Keys(self.ns)

    def new_store(self, namespace: str | None = None) -> Store:
        """Another Store on the same data (another process, as far as the store can tell): its own
        client and connections."""
        ns = namespace or self.ns
        if self.make_client is not None:
            return Store(client=self.make_client(), namespace=ns)
        return Store(url=self.url, namespace=ns)

    def now(self) -> float:
        """Redis's clock (TIME), the one leases are scored on."""
        sec, usec = self.raw.time()
        return sec + usec / 1e6

    def lease(self, tid: str) -> float | None:
        """The trial's lease expiry (epoch seconds on Redis's clock), None without a lease."""
        return self.raw.zscore(self.keys.leases, tid)

    def expire_lease(self, tid: str) -> None:
        """Time passing, without waiting: the trial's lease expiry is moved into the past."""
        assert self.raw.zadd(self.keys.leases, {tid: 0}, xx=True, ch=True) == 1, f"{tid} holds no lease"

    def ns_keys(self, ns: str | None = None) -> list[str]:
        """Every key of the namespace (this test's unless named)."""
        return list(self.raw.scan_iter(match=f"{ns or self.ns}:*", count=10_000))

    def leased(self) -> set[str]:
        return {str(tid) for tid in self.raw.zrange(self.keys.leases, 0, -1)}

    def check_books(self, store: Store, sid: str) -> None:
        """The bookkeeping every transition keeps exact: the counts hash equals the tally of the
        trials' states, the in-flight set holds exactly the queued and running trials, and the
        trials holding a lease are exactly the running ones."""
        trials = store.get_trials(store.trial_ids(sid), history=False)
        tally = Counter(t["state"] for t in trials)
        assert store.counts(sid) == {s: tally.get(s, 0) for s in TRIAL_STATES}, (store.counts(sid), tally)
        assert set(store.counts(sid)) == set(TRIAL_STATES)
        assert store.inflight_ids(sid) == {t["id"] for t in trials if t["state"] in ("queued", "running")}
        running = {t["id"] for t in trials if t["state"] == "running"}
        assert {tid for tid in self.leased() if tid.startswith(f"{sid}-")} == running


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn, on a fresh namespace; the real server's keys of it deleted after."""
    ns = f"sqc{secrets.token_hex(4)}"  # sqc: the store contract suite (its leftovers would show)
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()

        def make_client() -> redis.Redis:
            return fakeredis.FakeRedis(server=server, decode_responses=True)

        yield Backend("fakeredis", ns, make_client(), make_client, None)
        return
    url: str = request.getfixturevalue("redis_server")
    real = Backend("redis", ns, redis.Redis.from_url(url, decode_responses=True), None, url)
    try:
        yield real
    finally:  # its keys go, in few round trips (the database is shared)
        keys = real.ns_keys()
        for i in range(0, len(keys), 1000):
            real.raw.delete(*keys[i : i + 1000])
        real.raw.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    """The store under test, on the backend's namespace."""
    return backend.new_store()


@pytest.fixture
def history_cap() -> Iterator[int]:
    """A small ``HISTORY_CAP`` (5 values instead of 100,000): the scripts read it from
    ``sweepq.store.scripts`` when they are first registered on a store, so a store made after this
    fixture keeps 5. The scripts' cached text is rebuilt before and after."""
    cap = 5
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scripts, "HISTORY_CAP", cap)
            scripts.source.cache_clear()
            yield cap
    finally:  # the real cap back, and no script text made with the small one
        scripts.source.cache_clear()


def config(**over: Any) -> dict[str, Any]:
    """A normalised sweep config (what ``create_sweep`` is given); keyword overrides replace
    top-level keys, and a ``None`` removes one."""
    raw: dict[str, Any] = {
        "method": "random",
        "program": "train.py",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }
    raw.update(over)
    return load_config({k: v for k, v in raw.items() if v is not None})


def new_sweep(store: Store, **over: Any) -> str:
    return store.create_sweep(config(**over))


def running_trial(
    store: Store,
    sid: str,
    owner: str = "owner-1",
    params: dict[str, Any] | None = None,
    lease_ttl: float = 60.0,
) -> str:
    """A new trial of ``sid``, claimed by ``owner``."""
    (tid,) = store.create_trials(sid, [params if params is not None else {"x": 0.5}])
    claim = store.claim(sid, tid, owner, "worker-1", lease_ttl)
    assert claim.ok, claim
    return tid


def events(store: Store) -> list[dict[str, str]]:
    """Every entry of the change stream so far."""
    return [fields for _, fields in store.events_since("0-0")[1]]
