"""A full Redis (maxmemory reached, policy noeviction) is named, not mistaken for lost workers.

While Redis refuses writes: running trials keep running (their renewals are refused, which is
not the silence of a partition), their results wait, no lease is reaped; the CLI says what is
wrong in one line, the API answers JSON 503, a new sweep is refused whole (no half-written hash),
and status says why nothing moves. Once memory is freed every trial finishes, each run once at its
first attempt, and the sweep says that Redis was full.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import wait_for
from tests.faults.conftest import check_sweep, describe, make_config, records, sweep_done, wait_registered

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture
def own_controller(own_store: Any) -> Iterator[Any]:
    from sweepq.controller import Controller

    ctl = Controller(own_store, tick=0.2)
    th = threading.Thread(target=ctl.run, daemon=True)
    th.start()
    yield ctl
    ctl.stop_event.set()
    th.join(15)


def _fill(r: redis.Redis) -> int:
    """Cap Redis a little above what it holds and write junk until it refuses: a full Redis."""
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + (1 << 20))
    n = 0
    while True:
        try:
            r.set(f"junk:{n}", b"x" * 65536)
        except redis.exceptions.OutOfMemoryError:
            # right at the cap, what the stack frees on its own (acked messages, popped queues)
            # would end the outage: settle the cap well below what it holds (most of the ~1 MB of
            # junk), so that it stays full until the junk is deleted
            r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - (768 << 10))
            return n
        n += 1


def _free(r: redis.Redis, n: int) -> None:
    """Free memory as an operator would: delete what filled it (the cap stays)."""
    for i in range(0, n + 1, 100):
        r.delete(*[f"junk:{j}" for j in range(i, min(i + 100, n + 1))])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweepq.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_full_redis_is_named_and_costs_no_rerun(
    own_redis,
    own_store,
    own_controller,
    start_worker,  # noqa: ANN001
    rec_dir,
    pid_watch,
    sq_env,
    tmp_path: Path,
):
    store = own_store
    n = 4
    sid = store.create_sweep(
        make_config(
            run_cap=n,
            retries=1,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 25}, "sleep": {"value": 0.2}},
        )
    )
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    for _ in range(2):
        w = start_worker(concurrency=1, env=env, wait=False)
        wait_registered(store, w.name, w)
    wait_for(
        lambda: store.counts(sid)["running"] == 2,
        60,
        what="two trials running",
        info=lambda: describe(store, sid),
    )

    r = redis.Redis.from_url(own_redis.url)
    junk = _fill(r)
    full_since = time.monotonic()
    cli_env = {**sq_env, "SWEEPQ_REDIS_URL": own_redis.url}
    try:
        # the CLI: one line naming the cause, exit 1, no traceback
        for action in ("pause", "cancel"):
            res = _cli(cli_env, action, sid)
            assert res.returncode == 1, (action, res.returncode, res.stdout, res.stderr)
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and "out of memory" in lines[0] and "Traceback" not in res.stderr, (
                res.stderr
            )
        # a new sweep is refused whole: no hash, no id in the list, no trace in the active set
        before = sorted(k for k in r.scan_iter(match=f"{store.ns}:sweep*".encode()))
        cfg_path = tmp_path / "sweep.yaml"
        cfg_path.write_text("method: random\nprogram: train.py\nparameters:\n  x: {min: 0.0, max: 1.0}\n")
        res = _cli(cli_env, "sweep", str(cfg_path), "-q")
        assert res.returncode == 1 and "out of memory" in res.stderr and res.stdout == "", res
        assert sorted(k for k in r.scan_iter(match=f"{store.ns}:sweep*".encode())) == before
        assert store.list_sweeps() == [sid] and store.active_sweeps() == [sid]
        # status answers and says why
        res = _cli(cli_env, "status", sid, "--json")
        assert res.returncode == 0, res.stderr
        assert any("out of memory" in w for w in json.loads(res.stdout)["warnings"]), res.stdout
        # the HTTP API: JSON 503 naming the cause, never an HTML 500
        from sweepq.web import create_app

        client = create_app(store, {"api_token": None}).test_client()
        for resp in (
            client.post(f"/api/sweeps/{sid}/cancel"),
            client.post("/api/sweeps", data=cfg_path.read_bytes(), content_type="application/yaml"),
        ):
            assert resp.status_code == 503 and resp.is_json, (resp.status_code, resp.data[:300])
            assert "out of memory" in resp.get_json()["error"], resp.get_json()
        # hold it full for several lease TTLs (3 s): leases would have expired, trials have ended
        wait_for(lambda: time.monotonic() - full_since > 12, 20, what="a long outage")
        assert store.status(sid)["state"] == "running"
    finally:
        _free(r, junk)
    wait_for(
        lambda: sweep_done(store, sid),
        120,
        what="sweep end once memory was freed",
        info=lambda: describe(store, sid),
    )
    trials = check_sweep(store, sid, rec_dir, expect={"finished": n}, n_trials=n, dead_at=pid_watch.dead_at)
    # no run burnt on it: each trial ran once, at its first attempt, and logged its whole history
    assert all(t["attempt"] == 1 and len(t["history"]) == 25 for t in trials), describe(store, sid)
    assert Counter(rec["run"] for rec in records(rec_dir)) == dict.fromkeys((t["id"] for t in trials), 1)
    warnings = store.status(sid)["warnings"]
    assert any(w.startswith("Redis was out of memory") for w in warnings), warnings
