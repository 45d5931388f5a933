"""``celery -A sweepq.worker flower`` works out of the box against the test broker: a real Flower
process sees sweepq's workers and its ``sweepq.run_trial`` tasks, with the sweep and trial ids as
arguments, through Flower's HTTP API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, ROOT, _free_port, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _get(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.fixture
def flower(sq_env: dict[str, str], tmp_path: Path):  # noqa: ANN201
    port = _free_port()
    log = tmp_path / "flower.log"
    env = {**sq_env, "FLOWER_UNAUTHENTICATED_API": "true"}
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "sweepq.worker",
        "flower",
        "--address=127.0.0.1",
        f"--port={port}",
        "--persistent=False",
        "--purge_offline_workers=60",
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(ROOT),
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, f"flower exited:\n{log.read_text()[-3000:]}"
        try:
            return urllib.request.urlopen(f"{base}/healthcheck", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, 0.2, "flower to answer")
        yield base
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_flower_sees_workers_and_trials(flower: str, store, start_worker, controller) -> None:  # noqa: ANN001
    from sweepq.config import load_config
    from sweepq.dispatch import celery_config
    from sweepq.settings import Settings

    limit = celery_config(Settings.from_env()).get("broker_pool_limit")
    # Flower runs 8 broadcast inspect calls at once on the app's broker pool; below ~10 connections
    # they deadlock and Flower shows neither workers nor tasks (measured: 8 hangs, 10 works)
    assert limit is None or limit >= 10, (
        f"sweepq.worker sets broker_pool_limit={limit}: Flower (celery -A sweepq.worker flower) hangs on "
        "its concurrent inspect calls and shows no workers or tasks; it needs >= 10 (Celery's default)"
    )
    # a sweep longer than Flower's 5 s enable-events period: sweepq's workers start without task
    # events (-E); Flower turns them on in every worker it sees, and from then on lists the trials
    cfg = load_config(
        {
            "method": "random",
            "program": str(PROGRAMS / "trial.py"),
            "command": ["${env}", sys.executable, "${program}", "${args}"],
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 2}, "sleep": {"value": 0.05}},
            "run_cap": 400,
        }
    )
    w = start_worker(concurrency=2)
    sid = store.create_sweep(cfg)
    controller()

    # tasks: name and (sweep, trial) arguments, state and result
    def trial_tasks() -> list[dict[str, Any]]:
        tasks = _get(f"{flower}/api/tasks?limit=1000")
        return [t for t in tasks.values() if t.get("name") == "sweepq.run_trial"]

    wait_for(
        lambda: sum(t.get("state") == "SUCCESS" for t in trial_tasks()) >= 3,
        60,
        0.5,
        "Flower to enable task events and see 3 trial tasks succeed",
    )
    store.sweep_action(sid, "cancel")
    wait_for(lambda: sid not in store.active_sweeps(), 60, what="sweep end")
    tids = set(store.trial_ids(sid))
    done = [t for t in trial_tasks() if t.get("state") == "SUCCESS"]
    assert len(done) >= 3
    for t in done:
        args = t["args"]  # Flower shows the arguments as their repr: "['<sweep>', '<trial>']"
        assert sid in args, t
        assert any(f"'{tid}'" in args for tid in tids), t
        assert t["worker"] == w.name
        # finished, or ended by the cancel: running ('canceled') or still queued ('not_queued')
        assert t["result"] in ("'finished'", "'canceled'", "'not_queued'"), t

    # workers: Flower asks them with broadcast inspect calls (8 at once)
    try:
        workers = _get(f"{flower}/api/workers?refresh=1", timeout=20)
    except TimeoutError as exc:
        raise AssertionError(
            "Flower's /api/workers?refresh=1 hung (its inspect calls deadlock on a "
            "too small broker connection pool)"
        ) from exc
    assert w.name in workers, workers
    info = workers[w.name]
    assert any(q.get("name") == "sweepq" for q in info.get("active_queues") or []), info.get("active_queues")
    assert "sweepq.run_trial" in (info.get("registered") or []), info.get("registered")
    # a task's detail page in the API, by id
    one = next(iter(trial_tasks()))
    detail = _get(f"{flower}/api/task/info/{one['uuid']}")
    assert detail["name"] == "sweepq.run_trial" and sid in detail["args"]
