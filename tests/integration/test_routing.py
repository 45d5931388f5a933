"""Many machines, many queues, another broker.

Workers here are separate ``celery -A sweepq.worker worker`` processes with their own node names,
as workers on separate machines would be. A sweep's ``queue`` key decides which workers may run its
trials; ``SWEEPQ_BROKER_URL=amqp://...`` moves the Celery traffic to RabbitMQ while Redis stays
the state store.
"""

from __future__ import annotations

import functools
import json
import secrets
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, trial_config, wait_for

pytestmark = pytest.mark.redis

TRIAL = str(PROGRAMS / "trial.py")
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


make_config = functools.partial(trial_config, steps=3, sleep=0.1, run_cap=6)


def ended(store: Any, sid: str) -> bool:
    return sid not in store.active_sweeps()


def trials_of(store: Any, sid: str) -> list[dict[str, Any]]:
    return store.get_trials(store.trial_ids(sid), history=False)


def records(d: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in d.glob("*.json")]


def start_all(store: Any, start_worker: Any, specs: list[dict[str, Any]]) -> list[Any]:
    """Start several workers at once (each boot takes seconds) and wait until all registered."""
    workers = [start_worker(wait=False, **spec) for spec in specs]
    wait_for(
        lambda: {w.name for w in workers} <= {x["name"] for x in store.alive_workers()},
        60,
        what="workers to register",
        info=lambda: [w.output()[-2000:] for w in workers if w.proc.poll() is not None],
    )
    return workers


def stop_all(workers: list[Any]) -> None:
    """Cold-stop workers in parallel (the fixture would stop them one after another)."""
    for w in workers:
        w.kill(signal.SIGQUIT)
    for w in workers:
        w.stop()


def test_workers_with_different_node_names_share_one_sweep(store, start_worker, controller, tmp_path):  # noqa: ANN001
    rec = tmp_path / "rec"
    rec.mkdir()
    names = [f"{who}-{secrets.token_hex(2)}@host-{who}" for who in ("alpha", "beta", "gamma")]
    workers = start_all(
        store,
        start_worker,
        [{"concurrency": 1, "name": name, "env": {"SWEEPQ_TEST_RECORD": str(rec)}} for name in names],
    )
    sid = store.create_sweep(
        make_config(
            run_cap=6,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 4}, "sleep": {"value": 0.1}},
        )
    )
    controller()
    wait_for(lambda: ended(store, sid), 90, what="sweep end", info=lambda: store.counts(sid))
    trials = trials_of(store, sid)
    assert len(trials) == 6 and all(t["state"] == "finished" for t in trials)
    by_worker = Counter(t["worker"] for t in trials)
    assert set(by_worker) <= set(names), by_worker
    assert len(by_worker) >= 2, f"one worker ran everything: {by_worker}"
    assert sorted(r["run"] for r in records(rec)) == sorted(t["id"] for t in trials), "a trial ran twice"
    stop_all(workers)


def test_queue_routing_sends_trials_only_to_subscribed_workers(store, start_worker, controller):  # noqa: ANN001
    a100, cpu, idle = start_all(
        store,
        start_worker,
        [
            {"queues": "gpu-a100", "concurrency": 2, "name": f"a100-{secrets.token_hex(2)}@gpubox"},
            {"queues": "cpu", "concurrency": 2, "name": f"cpu-{secrets.token_hex(2)}@cpubox"},
            {"queues": "sweepq", "concurrency": 1, "name": f"default-{secrets.token_hex(2)}@other"},
        ],
    )
    gpu_sweep = store.create_sweep(make_config(queue="gpu-a100", run_cap=4))
    cpu_sweep = store.create_sweep(make_config(queue="cpu", run_cap=4))
    controller()
    wait_for(
        lambda: ended(store, gpu_sweep) and ended(store, cpu_sweep),
        90,
        what="both sweeps",
        info=lambda: (store.counts(gpu_sweep), store.counts(cpu_sweep)),
    )
    for sid, queue, worker in ((gpu_sweep, "gpu-a100", a100), (cpu_sweep, "cpu", cpu)):
        trials = trials_of(store, sid)
        assert len(trials) == 4 and all(t["state"] == "finished" for t in trials)
        assert {t["queue"] for t in trials} == {queue}
        assert {t["worker"] for t in trials} == {worker.name}, f"{queue} trials ran elsewhere"
    assert not any(idle.name == t["worker"] for s in (gpu_sweep, cpu_sweep) for t in trials_of(store, s))
    stop_all([a100, cpu, idle])


# -- RabbitMQ as the Celery broker ---------------------------------------------------------------
def _rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


class AmqpQueue:
    """A queue of this test's own on RabbitMQ, and the workers that consume it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workers: list[Any] = []


@pytest.fixture
def amqp_queue(namespace: str) -> Iterator[AmqpQueue]:
    """RabbitMQ has no key prefix (names are global), so the test gets its own queue name; at the
    end its workers are stopped first (a live consumer would declare the queue again), then the
    queue and the direct exchange Celery declared under the same name are deleted."""
    if not _rabbitmq_answers():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    q = AmqpQueue(f"{namespace}-trials")
    yield q
    stop_all(q.workers)
    from kombu import Connection

    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        for kind in ("queue", "exchange"):
            ch = conn.channel()  # a failed delete closes its channel: one channel per delete
            try:
                getattr(ch, f"{kind}_delete")(q.name)
            except Exception:  # never declared (the test failed early): nothing to clean
                pass
            finally:
                try:
                    ch.close()
                except Exception:
                    pass


def test_same_sweep_runs_with_a_rabbitmq_broker(
    store,
    start_worker,
    controller,  # noqa: ANN001
    amqp_queue: AmqpQueue,
    monkeypatch,
    tmp_path,
):
    from kombu import Connection

    monkeypatch.setenv("SWEEPQ_BROKER_URL", RABBITMQ_URL)  # read by the controller's publisher
    rec = tmp_path / "rec"
    rec.mkdir()
    env = {"SWEEPQ_BROKER_URL": RABBITMQ_URL, "SWEEPQ_TEST_RECORD": str(rec)}
    queue = amqp_queue.name
    w1, w2 = amqp_queue.workers[:] = start_all(
        store,
        start_worker,
        [
            {"queues": queue, "concurrency": 2, "name": f"rmq1-{secrets.token_hex(2)}@boxa", "env": env},
            {"queues": queue, "concurrency": 1, "name": f"rmq2-{secrets.token_hex(2)}@boxb", "env": env},
        ],
    )
    sid = store.create_sweep(make_config(queue=queue, run_cap=4))
    controller()
    wait_for(lambda: ended(store, sid), 90, what="sweep end over RabbitMQ", info=lambda: store.counts(sid))
    trials = trials_of(store, sid)
    assert len(trials) == 4 and all(t["state"] == "finished" for t in trials)
    assert {t["worker"] for t in trials} <= {w1.name, w2.name}
    assert len(records(rec)) == 4
    assert all(t["metric"] is not None for t in trials)  # metrics still flow through Redis
    # the trial messages went through RabbitMQ: the queue exists there, and none went to Redis
    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        _, depth, _ = conn.default_channel.queue_declare(queue, passive=True)
        assert depth == 0
    assert not list(store._r.scan_iter(match=f"*{queue}*"))
    assert "transport:   amqp://guest:**@127.0.0.1:5672//" in w1.output()  # Celery's banner


# -- upgrading a worker: cold shutdown hands the running trial back ------------------------------
def _running_records(d: Path) -> list[dict[str, Any]]:
    from tests.conftest import pid_alive

    return [r for r in records(d) if not r["end"] and pid_alive(r["pid"])]


def test_cold_shutdown_hands_the_running_trial_back(store, start_worker, controller, tmp_path):  # noqa: ANN001
    """What `docker stop` / `systemctl stop` does to a worker (SIGTERM to Celery's main process,
    REMAP_SIGTERM=SIGQUIT): the trial, an ordinary program that dies on SIGTERM, is queued again
    without counting as an attempt, so an upgraded or other worker runs it."""
    import os

    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(
        make_config(
            run_cap=1, parameters={"x": {"value": 0.5}, "steps": {"value": 1000}, "sleep": {"value": 0.05}}
        )
    )
    w = start_worker(concurrency=1, env={"SWEEPQ_TEST_RECORD": str(rec), "REMAP_SIGTERM": "SIGQUIT"})
    controller()
    first = wait_for(lambda: _running_records(rec), 60, what="the trial to run")[0]
    os.kill(w.pid, signal.SIGTERM)  # the main process only, as docker/systemd (KillMode=mixed) do
    w.proc.wait(30)
    trial = store.get_trial(first["run"], history=False)
    store.sweep_action(sid, "cancel")
    assert (trial["state"], trial["attempt"]) == ("queued", 0), (trial["state"], trial["reason"])
    assert "handed back" in trial["reason"]
