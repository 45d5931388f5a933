"""GPU pinning without GPUs: workers are given fake GPU lists with ``SWEEPQ_GPUS``.

The trial program records its start and end times, pid and ``CUDA_VISIBLE_DEVICES``; from those
records each test checks the promise users rely on: never more concurrent trials than GPU slots,
and never two concurrent trials on one GPU. Every test has its own lock directory
(``SWEEPQ_GPU_LOCK_DIR`` from ``sq_env``), so tests cannot see each other's slots.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, pid_alive, trial_config, wait_for

pytestmark = pytest.mark.redis

TRIAL = str(PROGRAMS / "trial.py")


make_config = functools.partial(trial_config, steps=4, sleep=0.1, run_cap=12)


def records(d: Path) -> list[dict[str, Any]]:
    out = []
    for p in d.glob("*.json"):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:  # being replaced right now; the next poll reads it
            continue
    return out


def ended(store: Any, sid: str) -> bool:
    return sid not in store.active_sweeps()


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    end_a = a["end"] or time.time()
    end_b = b["end"] or time.time()
    return a["start"] < end_b and b["start"] < end_a


def max_concurrency(recs: list[dict[str, Any]]) -> int:
    """Most trials alive at one instant (a sweep over start/end events)."""
    events = sorted(
        [(r["start"], 1) for r in recs] + [(r["end"] or time.time(), -1) for r in recs],
        key=lambda e: (e[0], e[1]),
    )
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def gpu_set(rec: dict[str, Any]) -> set[str]:
    return set((rec["gpus"] or "").split(",")) - {""}


def assert_disjoint_when_concurrent(recs: list[dict[str, Any]]) -> None:
    for a, b in combinations(recs, 2):
        if overlaps(a, b):
            assert not gpu_set(a) & gpu_set(b), (
                f"{a['run']} and {b['run']} shared GPUs at once: {a['gpus']} / {b['gpus']}"
            )


@pytest.fixture
def rec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rec"
    d.mkdir()
    return d


def test_four_gpu_slots_run_twelve_trials_at_most_four_at_once_on_disjoint_gpus(
    store, bare_worker, controller, rec_dir
):  # noqa: ANN001
    """A 4-GPU box started without -c: it sizes its pool to its GPUs (not to this machine's CPUs)
    and runs 12 trials, at most 4 at once, never two on one GPU."""
    sid = store.create_sweep(make_config(run_cap=12))
    name, log = bare_worker({"SWEEPQ_GPUS": "0,1,2,3", "SWEEPQ_TEST_RECORD": str(rec_dir)})
    reg = next(x for x in store.alive_workers() if x["name"] == name)
    assert reg["gpus"] == "0,1,2,3" and reg["slots"] == 4
    assert "concurrency: 4 (prefork)" in log.read_text()
    controller()
    wait_for(lambda: ended(store, sid), 90, what="sweep end", info=lambda: store.counts(sid))
    recs = records(rec_dir)
    assert len(recs) == 12 and all(r["end"] for r in recs)
    assert all(len(gpu_set(r)) == 1 and gpu_set(r) <= {"0", "1", "2", "3"} for r in recs)
    assert_disjoint_when_concurrent(recs)
    peak = max_concurrency(recs)
    assert peak <= 4
    assert peak >= 3, "four slots should run trials side by side (else the test proves nothing)"
    trials = {t["id"]: t for t in store.get_trials(store.trial_ids(sid), history=False)}
    assert all(t["state"] == "finished" for t in trials.values())
    for r in recs:  # the store records the same GPUs the process saw
        assert trials[r["run"]]["gpus"] == r["gpus"]


def test_gpus_per_trial_two_gives_disjoint_pairs(store, start_worker, controller, rec_dir):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=4, gpus_per_trial=2))
    start_worker(concurrency=4, env={"SWEEPQ_GPUS": "0,1,2,3", "SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    wait_for(lambda: ended(store, sid), 90, what="sweep end", info=lambda: store.counts(sid))
    recs = records(rec_dir)
    assert len(recs) == 4
    assert all(len(gpu_set(r)) == 2 and gpu_set(r) <= {"0", "1", "2", "3"} for r in recs)
    assert_disjoint_when_concurrent(recs)
    assert max_concurrency(recs) <= 2
    assert max_concurrency(recs) == 2, "two pairs fit on four GPUs at once"


@pytest.fixture
def bare_worker(store, sq_env, tmp_path):  # noqa: ANN001, ANN201
    """Factory: `celery -A sweepq.worker worker` *without* -c, as an operator would type it on a
    GPU box (the conftest factory always passes -c); stopped (cold) at teardown."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> tuple[str, Path]:
        name = f"bare{len(procs)}-{os.getpid()}@gpubox"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sweepq.worker",
            "worker",
            "-Q",
            "sweepq",
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ]
        log = tmp_path / f"{name.split('@')[0]}.log"
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    argv, env={**sq_env, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        wait_for(
            lambda: any(w["name"] == name for w in store.alive_workers()),
            60,
            what="worker registration",
            info=lambda: log.read_text()[-2000:],
        )
        return name, log

    yield start
    for p in procs:
        os.killpg(p.pid, signal.SIGQUIT)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _running(rec_dir: Path) -> list[dict[str, Any]]:
    return [r for r in records(rec_dir) if not r["end"] and pid_alive(r["pid"])]


@pytest.mark.parametrize("victim", ["trial", "pool-child"])
def test_a_killed_trial_frees_its_slot(store, start_worker, controller, rec_dir, victim):  # noqa: ANN001
    """One GPU, two pool children: the second trial waits for the GPU, and gets it as soon as the
    first trial's process is gone, whether the trial itself or the Celery child running it is
    SIGKILLed (the trial dies with its parent, and its lock goes with the process)."""
    sid = store.create_sweep(
        make_config(
            run_cap=3,
            retries=0,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 1000}, "sleep": {"value": 0.05}},
        )
    )
    start_worker(concurrency=2, env={"SWEEPQ_GPUS": "0", "SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    first = wait_for(lambda: _running(rec_dir), 60, what="a first trial")[0]
    assert first["gpus"] == "0"
    time.sleep(1.5)  # the second pool child holds a trial and waits for the GPU meanwhile
    assert len(records(rec_dir)) == 1, "a second trial started on the only GPU"
    killed_at = time.time()
    if victim == "trial":
        os.killpg(first["pgid"], signal.SIGKILL)
    else:
        child = int(Path(f"/proc/{first['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(child, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first["pid"]), 10, what="the first trial's process to be gone")
    second = wait_for(
        lambda: [r for r in records(rec_dir) if r["pid"] != first["pid"]],
        30,
        what="the next trial on the freed GPU",
    )[0]
    assert second["gpus"] == "0"
    assert second["start"] >= killed_at
    # what the store says of the killed trial: the runner saw it die, or (its runner died with it)
    # the reaper found its lease expired (retries: 0, so it is not run again)
    expected = "failed" if victim == "trial" else "crashed"
    wait_for(
        lambda: store.get_trial(first["run"], history=False)["state"] == expected,
        30,
        what=f"the killed trial to be {expected}",
        info=lambda: store.get_trial(first["run"], history=False),
    )
    store.sweep_action(sid, "cancel")
    wait_for(
        lambda: ended(store, sid),
        60,
        what="cancel",
        info=lambda: [
            (t["id"], t["state"], t.get("reason"))
            for t in store.get_trials(store.trial_ids(sid), history=False)
        ],
    )
    lives = [
        {**r, "end": r["end"] or (killed_at if r["pid"] == first["pid"] else time.time())}
        for r in records(rec_dir)
    ]
    assert not any(overlaps(a, b) for a, b in combinations(lives, 2)), "two trials on one GPU at once"
    wait_for(lambda: not any(pid_alive(r["pid"]) for r in records(rec_dir)), 10, what="no trial left")


def test_agent_with_gpus_flag_pins_trials(store, sq_env, rec_dir, tmp_path):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=4))
    sweepq = str(Path(sys.executable).with_name("sweepq"))
    env = {**sq_env, "SWEEPQ_TEST_RECORD": str(rec_dir)}
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sweepq, "agent", sid, "--gpus", "0,1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(tmp_path),
        )
    try:
        rc = proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == 0, log.read_text()[-3000:]
    recs = records(rec_dir)
    assert len(recs) == 4, log.read_text()[-3000:]
    assert all(len(gpu_set(r)) == 1 and gpu_set(r) <= {"0", "1"} for r in recs)
    assert_disjoint_when_concurrent(recs)
    assert max_concurrency(recs) <= 2
    assert store.status(sid)["counts"]["finished"] == 4


# -- detection, without Redis --------------------------------------------------------------------
def test_detect_gpus_from_env_nvidia_smi_and_device_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweepq import gpus

    monkeypatch.setenv("SWEEPQ_GPUS", "0, 1,3")
    assert gpus.detect_gpus() == ["0", "1", "3"]
    monkeypatch.setenv("SWEEPQ_GPUS", "")
    assert gpus.detect_gpus() == []  # set but empty: this worker manages no GPUs
    monkeypatch.delenv("SWEEPQ_GPUS")
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA A100 (UUID: GPU-b)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert gpus.detect_gpus() == ["0", "1"]
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(
        gpus.glob, "glob", lambda _: ["/dev/nvidia2", "/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm"]
    )
    assert gpus.detect_gpus() == ["0", "2"]


def test_slot_pool_never_hands_out_a_held_gpu(tmp_path: Path) -> None:
    from sweepq.gpus import SlotPool

    pool = SlotPool(["0", "1", "2"], lock_dir=str(tmp_path))
    a = pool.acquire(2)
    b = pool.acquire(1)
    assert set(a.gpus).isdisjoint(b.gpus) and len(a.gpus) == 2
    with pytest.raises(TimeoutError):
        pool.acquire(1, timeout=0.3)
    a.release()
    c = pool.acquire(2, timeout=2)
    assert set(c.gpus).isdisjoint(b.gpus)
    c.release()
    b.release()
    assert SlotPool([], lock_dir=str(tmp_path)).acquire(3).visible_devices is None
