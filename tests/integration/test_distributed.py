"""The distributed loop against a real Redis and real `celery worker` processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, pid_alive, trial_config, wait_for

pytestmark = pytest.mark.redis

TRIAL = str(PROGRAMS / "trial.py")


make_config = trial_config


def finished(store, sid: str) -> bool:  # noqa: ANN001
    return sid not in store.active_sweeps()


def records(d: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in d.glob("*.json")]


def test_run_cap_sweep_ends_with_exactly_n_trials(store, start_worker, controller):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=6))
    start_worker(concurrency=2)
    controller()
    wait_for(lambda: finished(store, sid), 90, what="sweep end")
    trials = store.get_trials(store.trial_ids(sid))
    assert len(trials) == 6
    assert all(t["state"] == "finished" for t in trials)
    assert all(len(t["history"]) == 3 and t["metric"] is not None for t in trials)
    st = store.status(sid)
    assert st["state"] == "finished" and st["counts"]["finished"] == 6
    best = min(trials, key=lambda t: t["metric"])
    assert st["best"]["run_id"] == best["id"]
    assert st["best"]["value"] == pytest.approx(best["metric"])


def test_grid_runs_each_point_once(store, start_worker, controller):  # noqa: ANN001
    cfg = make_config(
        method="grid",
        run_cap=None,
        parameters={
            "x": {"values": [0.1, 0.2, 0.3, 0.4]},
            "steps": {"values": [1, 2]},
            "sleep": {"value": 0.01},
        },
    )
    sid = store.create_sweep(cfg)
    start_worker(concurrency=2)
    start_worker(concurrency=1)
    controller()
    wait_for(
        lambda: finished(store, sid),
        90,
        what="grid end",
        info=lambda: (
            store.status(sid),
            [(t["id"], t["state"], t["queue"], t["params"]) for t in store.get_trials(store.trial_ids(sid))],
        ),
    )
    trials = store.get_trials(store.trial_ids(sid))
    points = sorted((t["params"]["x"], t["params"]["steps"]) for t in trials)
    assert points == sorted((x, s) for x in [0.1, 0.2, 0.3, 0.4] for s in [1, 2])
    assert all(t["state"] == "finished" for t in trials)
    assert store.status(sid)["end_reason"] == "search space exhausted"


def test_pause_resume_stop(store, start_worker, controller):  # noqa: ANN001
    sid = store.create_sweep(
        make_config(
            run_cap=40,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 4}, "sleep": {"value": 0.25}},
        )
    )
    start_worker(concurrency=2)
    controller()
    wait_for(lambda: store.counts(sid)["finished"] >= 2, 60, what="first trials")
    store.sweep_action(sid, "pause")
    wait_for(lambda: store.counts(sid)["running"] == 0, 30, what="running trials to drain")
    n_before = store.n_trials(sid)
    done_before = store.counts(sid)["finished"]
    import time

    time.sleep(2.0)
    c = store.counts(sid)
    assert c["running"] == 0, "a paused sweep started a trial"
    assert c["finished"] == done_before
    store.sweep_action(sid, "resume")
    wait_for(lambda: store.counts(sid)["finished"] > done_before, 60, what="resume")
    assert store.n_trials(sid) >= n_before
    wait_for(lambda: store.counts(sid)["running"] >= 1, 30, what="a running trial")
    store.sweep_action(sid, "stop")
    wait_for(lambda: finished(store, sid), 60, what="stop to drain")
    c = store.counts(sid)
    assert c["running"] == 0 and c["queued"] == 0
    assert c["stopped"] == 0, "stop must let running trials finish, not kill them"
    assert store.status(sid)["state"] == "stopped"
    assert c["finished"] + c["canceled"] == store.n_trials(sid)


def test_cancel_kills_running_trials(store, start_worker, controller, tmp_path, monkeypatch):  # noqa: ANN001
    rec = tmp_path / "rec"
    rec.mkdir()
    worker_env = {"SWEEPQ_TEST_RECORD": str(rec)}
    sid = store.create_sweep(
        make_config(
            run_cap=10,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 1000}, "sleep": {"value": 0.1}},
        )
    )
    start_worker(concurrency=2, env=worker_env)
    controller()
    wait_for(lambda: store.counts(sid)["running"] == 2 and len(records(rec)) == 2, 60, what="2 running")
    pids = [r["pid"] for r in records(rec)]
    store.sweep_action(sid, "cancel")
    wait_for(lambda: finished(store, sid), 60, what="cancel")
    trials = store.get_trials(store.trial_ids(sid), history=False)
    assert sorted(t["state"] for t in trials if t["started_at"]) == ["canceled", "canceled"]
    assert store.status(sid)["state"] == "canceled"
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, what="trial processes to be gone")


def test_two_sweeps_do_not_interfere(store, start_worker, controller):  # noqa: ANN001
    a = store.create_sweep(make_config(run_cap=4))
    b = store.create_sweep(
        make_config(
            run_cap=5, parameters={"x": {"values": [0.9]}, "steps": {"value": 2}, "sleep": {"value": 0.01}}
        )
    )
    start_worker(concurrency=2)
    controller()
    wait_for(lambda: finished(store, a) and finished(store, b), 90, what="both sweeps")
    ta = store.get_trials(store.trial_ids(a))
    tb = store.get_trials(store.trial_ids(b))
    assert len(ta) == 4 and len(tb) == 5
    assert all(t["id"].startswith(a) for t in ta) and all(t["id"].startswith(b) for t in tb)
    assert all(t["params"]["x"] == 0.9 and len(t["history"]) == 2 for t in tb)
    assert store.status(a)["counts"]["finished"] == 4 and store.status(b)["counts"]["finished"] == 5


def test_failing_trial_keeps_stderr_tail(store, start_worker, controller):  # noqa: ANN001
    sid = store.create_sweep(
        make_config(run_cap=2, parameters={"x": {"value": 0.5}, "exit": {"value": 3}, "steps": {"value": 1}})
    )
    start_worker()
    controller()
    wait_for(lambda: finished(store, sid), 60)
    trials = store.get_trials(store.trial_ids(sid))
    assert [t["state"] for t in trials] == ["failed", "failed"]
    assert all(t["exit_code"] == 3 for t in trials)
    assert all("failing on purpose with exit code 3" in t["log_tail"] for t in trials)
    assert store.best(sid) is None


def test_hostile_parameter_values_reach_program_literally(store, start_worker, controller, tmp_path):  # noqa: ANN001
    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(
        make_config(
            run_cap=2,
            parameters={"evil": {"values": ["; rm -rf ~", "$(reboot)"]}, "steps": {"value": 1}},
            method="grid",
        )
    )
    start_worker(env={"SWEEPQ_TEST_RECORD": str(rec)})
    controller()
    wait_for(lambda: finished(store, sid), 60)
    argvs = sorted(tuple(r["argv"]) for r in records(rec))
    assert ("--evil=$(reboot)",) in [tuple(a for a in av if a.startswith("--evil")) for av in argvs]
    assert ("--evil=; rm -rf ~",) in [tuple(a for a in av if a.startswith("--evil")) for av in argvs]
    assert all(t["state"] == "finished" for t in store.get_trials(store.trial_ids(sid)))


def test_publisher_batch_puts_one_message_per_trial_on_the_real_broker(store) -> None:  # noqa: ANN001
    """``Publisher.many`` goes through kombu's publish batch (one pipelined round trip): every
    trial arrives as its own Celery message, on its own queue, with (sweep, trial) as args."""
    import base64

    from sweepq.dispatch import TASK_NAME, make_publisher

    pub = make_publisher(store.ns, store.url)
    items = [("s1", "s1-1", "sweepq", 0), ("s1", "s1-2", "sweepq", 0), ("s1", "s1-3", "other", 1)]
    pub.many([*items, ("s1", ("s1-4", "s1-5", "s1-6"), "other", 0)])
    prefix = store.keys.celery_prefix
    msgs = {q: [json.loads(m) for m in store._r.lrange(prefix + q, 0, -1)] for q in ("sweepq", "other")}
    assert len(msgs["sweepq"]) == 2 and len(msgs["other"]) == 2
    seen = []
    for q, ms in msgs.items():
        for m in ms:
            assert m["headers"]["task"] == TASK_NAME
            args = (
                json.loads(base64.b64decode(m["body"]))[0]
                if m["properties"].get("body_encoding") == "base64"
                else json.loads(m["body"])[0]
            )
            seen.append((args[0], *args[1:], q))
    # several trials in one message (short-trial batching): one message, the ids in order
    assert sorted(seen) == sorted(
        [*((s, t, q) for s, t, q, _ in items), ("s1", "s1-4", "s1-5", "s1-6", "other")]
    )


def test_short_trials_batched_on_real_workers_each_run_once(store, start_worker, controller, tmp_path):  # noqa: ANN001
    """Short trials go several to a Celery message (controller.BATCH_MAX) once 8 have shown how
    long they take; real workers run every trial of a message, each exactly once, and the sweep
    ends with exactly run_cap trials. The window is widened (5 s) so that this machine's Python
    start-up (~30-100 ms per trial) counts as short: what is tested is the path, not the threshold."""
    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(trial_config(steps=1, sleep=0.0, run_cap=40))
    for _ in range(2):
        start_worker(concurrency=1, env={"SWEEPQ_TEST_RECORD": str(rec)})
    ctl = controller(batch_window=5.0)
    wait_for(lambda: sid not in store.active_sweeps(), 120, what="sweep end")
    trials = store.get_trials(store.trial_ids(sid), history=False)
    assert len(trials) == 40 and all(t["state"] == "finished" and t["attempt"] == 1 for t in trials)
    assert ctl.stats["batched"] > 0, "no trials were batched"
    runs = [json.loads(p.read_text()) for p in rec.glob("*.json")]
    assert sorted(r["run"] for r in runs) == sorted(t["id"] for t in trials), "each trial ran exactly once"
