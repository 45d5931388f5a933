"""Failures are visible and a broken sweep fails fast: ``sweepq run`` prints each failure's
cause and exits non-zero when no trial finished; a sweep whose first trials all fail ends
``failed`` with the first error as its reason instead of burning ``run_cap``; ``sweepq logs``
prints a trial's output, following it live even from a machine that does not have the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis]


def _sweepq(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweepq.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_program_fails_fast_with_its_cause(sq_env: dict[str, str], store, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        textwrap.dedent("""
        method: random
        program: no_such_train.py
        metric: {name: loss}
        parameters:
          lr: {min: 0.001, max: 0.1}
        run_cap: 30
    """)
    )
    res = _sweepq(sq_env, "run", str(cfg), "--workers", "2", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "can't open file" in out, out  # the cause, as the program said it
    (sid,) = store.list_sweeps()
    status = store.status(sid)
    assert status["state"] == "failed", status
    assert (
        "its first 3 trials failed" in status["end_reason"] and "can't open file" in status["end_reason"]
    ), status
    attempted = status["trials"] - status["counts"]["canceled"]
    assert attempted <= 6, status  # a handful, not run_cap's 30
    failed = [t for t in store.get_trials(store.trial_ids(sid), history=False) if t["state"] == "failed"]
    logs = _sweepq(sq_env, "logs", failed[0]["id"], cwd=tmp_path)
    assert logs.returncode == 0 and "can't open file" in logs.stdout, logs
    assert _sweepq(sq_env, "logs", f"{sid}-999", cwd=tmp_path).returncode == 3


def test_run_exits_non_zero_when_no_trial_finished(sq_env: dict[str, str], store, tmp_path: Path) -> None:  # noqa: ANN001
    """Failures after a first success are a sweep's business (fail_fast judges only the first
    trials), but a sweep that ends with nothing finished is not a success."""
    prog = tmp_path / "flaky.py"
    prog.write_text("import sys\nsys.stderr.write('diverged: loss is nan\\n')\nsys.exit(3)\n")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        f"method: grid\nprogram: {prog}\nfail_fast: 0\nmetric: {{name: loss}}\n"
        "parameters:\n  a: {values: [1, 2]}\n"
    )
    res = _sweepq(sq_env, "run", str(cfg), "--workers", "1", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert out.count("diverged: loss is nan") >= 2 and "2 trial(s) failed" in out, out
    (sid,) = store.list_sweeps()
    assert store.status(sid)["state"] == "finished" and store.status(sid)["counts"]["failed"] == 2


def test_logs_follow_a_trial_whose_file_is_elsewhere(
    sq_env: dict[str, str],
    store,
    start_worker,
    controller,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    from sweepq.config import load_config

    prog = tmp_path / "talk.py"
    prog.write_text(
        "import sys, time\nfor i in range(12):\n    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.25)\nsys.stderr.write('done talking\\n')\n"
    )
    sid = store.create_sweep(
        load_config(
            {
                "method": "grid",
                "program": str(prog),
                "parameters": {"a": {"value": 1}},
                "command": ["${env}", sys.executable, "${program}"],
            }
        )
    )
    start_worker()
    controller()
    t = wait_for(
        lambda: next(
            (x for x in store.get_trials(store.trial_ids(sid), history=False) if x["state"] == "running"),
            None,
        ),
        60,
        what="a running trial",
    )
    # the file appears with the program's first line (sweepq creates it then); once it is gone,
    # it is as on another machine: only Redis has the output
    log = Path(t["log_path"])
    wait_for(log.exists, 30, what="the trial's log file")
    log.unlink()
    res = _sweepq(sq_env, "logs", t["id"], "--follow")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"line {i}" for i in range(12)] + ["done talking"], res.stdout
