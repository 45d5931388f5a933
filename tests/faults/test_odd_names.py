"""Non-ASCII and non-UTF-8 parameter values and file names: each reaches the program as it is
(bytes that are not UTF-8 included) or fails the trial with a clear reason; the sweep ends."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import TRIAL, check_sweep, describe, make_config, records, sweep_done

pytestmark = [pytest.mark.redis, pytest.mark.faults]

VALUES = ["ünï©ødé 🚀", "line\nbreak", "a\x00b", "\udcff raw byte", "-x --not-a-flag"]


def test_odd_parameter_values_and_program_path(store, start_worker, controller, rec_dir, tmp_path: Path):  # noqa: ANN001
    d = tmp_path / "prögram dir 🚀"
    d.mkdir()
    prog = d / "trial \udcfe.py"  # a file name that is not valid UTF-8 (byte 0xfe)
    shutil.copy(TRIAL, prog)
    assert os.fsencode(str(prog)).endswith(b"trial \xfe.py")
    sid = store.create_sweep(
        make_config(
            program=str(prog),
            method="grid",
            run_cap=None,
            parameters={"v": {"values": VALUES}, "steps": {"value": 1}},
        )
    )
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    trials = {t["params"]["v"]: t for t in check_sweep(store, sid, rec_dir, n_trials=len(VALUES))}
    argv = {r["run"]: r["argv"] for r in records(rec_dir)}
    for v in VALUES:
        t = trials[v]
        if "\x00" in v:  # an argument cannot hold a NUL byte: the trial fails, clearly, at once
            assert t["state"] == "failed" and "null" in t["reason"].lower(), t
            assert t["id"] not in argv
            continue
        assert t["state"] == "finished", {k: t.get(k) for k in ("state", "reason", "log_tail", "exit_code")}
        assert f"--v={v}" in argv[t["id"]], (v, argv[t["id"]])  # literally, byte for byte
