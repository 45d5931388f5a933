"""sweepq.wandb_bridge against the real wandb package: its parameters file, its environment, and
its reader of wandb's transaction log, on logs that wandb itself writes here (offline, with W&B's
address pointed at a closed local port, so any call to a server would fail).

The reader is checked three ways: against the rows the script logged, against wandb's own
protobuf definitions decoding the same records, and read while the file grows, in pieces of
every size (partial chunks, records split over blocks)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sweepq import wandb_bridge
from sweepq.wandb_bridge import BLOCK, TransactionLog, TrialBridge

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _wandb_installed() -> None:
    if importlib.util.find_spec("wandb") is None:
        pytest.fail("these tests need the real wandb package: pip install -e '.[dev]' (or 'sweepq[wandb]')")


def offline_env(tmp: Path, **extra: str) -> dict[str, str]:
    """wandb offline, its caches in ``tmp``, W&B's server a closed local port: no network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEPQ_", "WANDB_"))}
    env.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_BASE_URL": "http://127.0.0.1:9",
            "WANDB_SILENT": "true",
            "WANDB_ERROR_REPORTING": "false",
            "WANDB_CACHE_DIR": str(tmp / "cache"),
            "WANDB_CONFIG_DIR": str(tmp / "config"),
            "WANDB_DATA_DIR": str(tmp / "data"),
            "WANDB_DIR": str(tmp),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


# one script for the reader's tests: every kind of value, nested keys, explicit steps,
# commit=False, and rows big enough to span 32 KiB blocks (first/middle/last chunks)
LOGGING_SCRIPT = r"""
import sys, time, wandb
run = wandb.init(config={"a": 1})
pause = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
wandb.log({"loss": 0.5, "acc": 1, "nested": {"a": 2, "b": {"c": 3}}})
wandb.log({"flag": True, "name": "x", "none": None, "nan": float("nan"), "inf": float("inf")})
wandb.log({"loss": 0.25}, step=5)
wandb.log({"partial": 1}, commit=False)
wandb.log({"loss": 0.125})
wandb.log({"big": "y" * 70000, "loss": 0.1})
for i in range(12):
    wandb.log({"loss": 1.0 / (i + 10), "i": i, "pad": "z" * 9000})
    time.sleep(pause)
wandb.summary["best"] = 0.01
wandb.finish()
"""

# W&B's rules: a row logged with step= stays open until a later step, so the commit=False row and
# the next log() join it at step 5, and their loss replaces its loss (wandb writes it so)
EXPECTED = [
    {"loss": 0.5, "acc": 1, "nested.a": 2, "nested.b.c": 3, "_step": 0},
    {"flag": True, "name": "x", "none": None, "nan": float("nan"), "inf": float("inf"), "_step": 1},
    {"partial": 1, "loss": 0.125, "_step": 5},
    {"big": "y" * 70000, "loss": 0.1, "_step": 6},
] + [{"loss": 1.0 / (i + 10), "i": i, "pad": "z" * 9000, "_step": 7 + i} for i in range(12)]


def canonical(rows: list[dict[str, Any]]) -> str:
    """Rows compared as JSON with sorted keys (NaN equals NaN there, key order is wandb's)."""
    return json.dumps(rows, sort_keys=True)


def run_file(tmp: Path) -> Path:
    found = sorted(tmp.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A transaction log that wandb wrote for LOGGING_SCRIPT (the run has ended)."""
    tmp = tmp_path_factory.mktemp("wandb-log")
    script = tmp / "log.py"
    script.write_text(LOGGING_SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script)],
        env=offline_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return run_file(tmp)


def test_rows_are_what_the_script_logged(logged: Path) -> None:
    assert logged.stat().st_size > 3 * BLOCK  # several blocks: records cross block boundaries
    log = TransactionLog(logged)
    assert canonical(log.rows()) == canonical(EXPECTED)
    assert log.rows() == []  # nothing new
    assert (log.problem, log.skipped_blocks, log.bad_records) == ("", 0, 0)


def test_decoder_agrees_with_wandbs_own_protobuf_definitions(logged: Path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb

    ours, theirs, kinds = [], [], set()
    for payload in TransactionLog(logged).records():
        record = pb.Record()
        record.ParseFromString(payload)
        kinds.add(record.WhichOneof("record_type"))
        ours.append(wandb_bridge.history_row(payload))
        if record.WhichOneof("record_type") != "history":
            theirs.append(None)
            continue
        row: dict[str, Any] = {}
        for item in record.history.item:
            key = ".".join(item.nested_key) if item.nested_key else item.key
            if key not in ("_runtime", "_timestamp") and not key.startswith("_wandb"):
                row[key] = json.loads(item.value_json)
        row["_step"] = int(row.get("_step", record.history.step.num))
        theirs.append(row)
    assert {"run", "history", "summary", "exit"} <= kinds  # summaries and the rest are not rows
    assert canonical(ours) == canonical(theirs)
    assert sum(r is not None for r in ours) == len(EXPECTED)


@pytest.mark.parametrize("sizes", [[1, 2, 3, 5, 7, 11, 13, 997, 4096], [32768], [6, 7, 8, 32761]])
def test_a_file_read_while_it_grows_gives_each_row_once(
    logged: Path, tmp_path: Path, sizes: list[int]
) -> None:
    """The file copied piece by piece (pieces of the given sizes in turn), read after each piece:
    every partial chunk, partial header and block boundary is met; the rows come out whole, in
    order, each once."""
    data = logged.read_bytes()
    growing = tmp_path / "run-x.wandb"
    growing.write_bytes(b"")
    log = TransactionLog(growing)
    rows: list[dict[str, Any]] = []
    at, k = 0, 0
    with open(growing, "ab") as f:
        while at < len(data):
            piece = data[at : at + sizes[k % len(sizes)]]
            f.write(piece)
            f.flush()
            at += len(piece)
            k += 1
            rows.extend(log.rows())
    assert canonical(rows) == canonical(EXPECTED)
    assert (log.skipped_blocks, log.bad_records) == (0, 0)


def test_rows_arrive_while_wandb_is_still_writing(tmp_path: Path) -> None:
    """A live run: wandb flushes its log every 0.2 s here (sweepq asks for 1 s); the reader sees
    rows before the program ends, and in the end exactly the rows of a full read."""
    script = tmp_path / "log.py"
    script.write_text(LOGGING_SCRIPT)
    env = offline_env(tmp_path, WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL="0.2")
    proc = subprocess.Popen(
        [sys.executable, str(script), "0.25"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        log: TransactionLog | None = None
        rows: list[dict[str, Any]] = []
        live = 0  # rows read while the program was still running
        while True:
            running = proc.poll() is None
            if log is None:
                found = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
                log = TransactionLog(found[0]) if found else None
            new = log.rows() if log is not None else []
            rows.extend(new)
            if running:
                live += len(new)
            else:
                break
            time.sleep(0.05)
        assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert log is not None
    assert live > 0, "no row was read while the run was going on"
    assert canonical(rows) == canonical(EXPECTED)
    assert canonical(TransactionLog(log.path).rows()) == canonical(EXPECTED)


def test_a_bad_checksum_costs_only_its_block(logged: Path, tmp_path: Path) -> None:
    clean = TransactionLog(logged).records()
    data = bytearray(logged.read_bytes())
    data[BLOCK + 100] ^= 0xFF  # inside the second block
    bad = tmp_path / "run-bad.wandb"
    bad.write_bytes(bytes(data))
    log = TransactionLog(bad)
    records = log.records()
    assert log.skipped_blocks == 1
    # the records that touch the damaged block are lost (a record spans at most a few blocks),
    # no other, none is invented, and the order stays
    assert 0 < len(clean) - len(records) <= 4
    assert records == [r for r in clean if r in records]
    rows = [row for row in map(wandb_bridge.history_row, records) if row is not None]
    good = [json.dumps(r, sort_keys=True) for r in EXPECTED]
    got = [json.dumps(r, sort_keys=True) for r in rows]
    assert got == [g for g in good if g in got] and got[-1] == good[-1]


def test_a_file_that_is_not_a_wandb_log_gives_no_rows(tmp_path: Path) -> None:
    other = tmp_path / "run-x.wandb"
    other.write_bytes(b"SQLite format 3\x00" + bytes(100))
    log = TransactionLog(other)
    assert log.rows() == [] and "not a wandb transaction log" in log.problem
    assert TransactionLog(tmp_path / "missing.wandb").rows() == []


# -- the parameters file and the environment -------------------------------------------------------
PARAMS = {
    "lr": 1e-05,
    "layers": 3,
    "act": "relu",
    "flag": False,
    "none": None,
    "text": "1e-5",
    "model": {"depth": 2, "block": {"kind": "res", "widths": [64, 128]}},
}


def test_the_parameters_file_is_the_one_wandbs_agent_writes(tmp_path: Path) -> None:
    from wandb.sdk.lib import config_util

    theirs = tmp_path / "theirs.yaml"
    config_util.save_config_file_from_dict(str(theirs), {k: {"value": v} for k, v in PARAMS.items()})
    assert wandb_bridge.param_file_text(PARAMS) == theirs.read_text()
    assert wandb_bridge.param_file_text({}) == "wandb_version: 1"
    # and wandb reads it back as the same values (top level unwrapped, nested groups as dicts)
    assert config_util.dict_from_config_file(str(theirs)) == PARAMS


def test_environment_offline_unless_the_worker_sets_a_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "WANDB_MODE",
        "WANDB_ERROR_REPORTING",
        "WANDB_RUN_GROUP",
        "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL",
    ):
        monkeypatch.delenv(var, raising=False)
    bridge = TrialBridge("abc123-4", "abc123", tmp_path)
    env = bridge.prepare(PARAMS)
    param_path = Path(env.pop("WANDB_SWEEP_PARAM_PATH"))
    assert param_path.parent == tmp_path / "abc123" / "wandb" / "sweep-abc123"
    assert param_path.read_text() == wandb_bridge.param_file_text(PARAMS)
    assert env == {
        "WANDB_RUN_ID": "abc123-4",
        "WANDB_DIR": str(tmp_path / "abc123"),
        "WANDB_MODE": "offline",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_RUN_GROUP": "sweepq-abc123",
        "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL": "1",
    }
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_RUN_GROUP", "mine")
    env = TrialBridge("abc123-5", "abc123", tmp_path).prepare(PARAMS)
    assert "WANDB_MODE" not in env and "WANDB_ERROR_REPORTING" not in env and "WANDB_RUN_GROUP" not in env
    assert "WANDB_SWEEP_ID" not in env  # W&B's server refuses a run that names a sweep it does not know


def test_a_slots_next_trial_rewrites_its_parameters_file(tmp_path: Path) -> None:
    """One file per worker slot, rewritten in place: the next trial's (shorter) parameters leave
    nothing of the previous trial's behind."""
    first = TrialBridge("s2-1", "s2", tmp_path)
    first.prepare(PARAMS)
    second = TrialBridge("s2-2", "s2", tmp_path)
    second.prepare({"lr": 0.5})
    assert second.param_path == first.param_path
    assert second.param_path.read_text() == "wandb_version: 1\n\nlr:\n  value: 0.5\n"
    assert [p.name for p in second.param_path.parent.iterdir()] == [second.param_path.name]


def test_a_parameters_file_that_cannot_be_written_fails_the_trial_visibly(tmp_path: Path) -> None:
    """Never the slot's previous parameters, never the defaults: the path given to wandb does not
    exist, so wandb.init stops with 'config file ... doesn't exist'."""
    bridge = TrialBridge("s3-1", "s3", tmp_path)
    bridge.prepare({"lr": 0.1})
    blocked = bridge.param_path
    blocked.unlink()
    blocked.mkdir()  # the slot's file cannot be opened for writing any more
    again = TrialBridge("s3-2", "s3", tmp_path)
    env = again.prepare({"lr": 0.2})
    assert env["WANDB_SWEEP_PARAM_PATH"] != str(blocked)
    assert not Path(env["WANDB_SWEEP_PARAM_PATH"]).exists()


def test_a_value_wandb_cannot_read_points_wandb_at_a_missing_file(tmp_path: Path) -> None:
    """A parameter value that is not UTF-8 (a surrogate escape of a raw byte) cannot go into W&B's
    YAML file: the trial still runs (a script without wandb never notices), and wandb.init, if
    called, fails visibly instead of reading the slot's previous parameters."""
    TrialBridge("s4-1", "s4", tmp_path).prepare({"v": "fine"})
    bridge = TrialBridge("s4-2", "s4", tmp_path)
    env = bridge.prepare({"v": "\udcff raw byte"})
    assert not Path(env["WANDB_SWEEP_PARAM_PATH"]).exists()


def test_prepare_uses_the_workers_wandb_dir_as_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wandb_bridge.SWITCH, "on")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "mine"))
    bridge = wandb_bridge.prepare("s1-1", "s1", {"x": 1}, tmp_path / "logs")
    assert bridge is not None and bridge.env["WANDB_DIR"] == str(tmp_path / "mine" / "s1")
    monkeypatch.delenv("WANDB_DIR")
    bridge = wandb_bridge.prepare("s1-2", "s1", {"x": 1}, tmp_path / "logs")
    assert bridge is not None and bridge.env["WANDB_DIR"] == str(tmp_path / "logs" / "wandb" / "s1")


def test_the_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(wandb_bridge.SWITCH, "off")
    assert not wandb_bridge.enabled() and wandb_bridge.prepare("s-1", "s", {}, tmp_path) is None
    monkeypatch.setenv(wandb_bridge.SWITCH, "on")
    assert wandb_bridge.enabled()
    monkeypatch.delenv(wandb_bridge.SWITCH)
    assert wandb_bridge.enabled()  # auto: this Python has wandb


def test_a_wandb_folder_is_not_the_wandb_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B's run folder ./wandb in a worker's directory must not pass for an installed wandb."""
    (tmp_path / "sqfolder").mkdir()
    (tmp_path / "sqpackage").mkdir()
    (tmp_path / "sqpackage" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not wandb_bridge.installed("sqfolder")
    assert wandb_bridge.installed("sqpackage")
    assert not wandb_bridge.installed("sqmissing")


def test_wandb_init_takes_the_trials_parameters_locked_over_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    bridge = TrialBridge("abc123-7", "abc123", tmp_path)
    bridge.prepare(PARAMS)
    script = tmp_path / "t.py"
    script.write_text(
        "import json, wandb\n"
        "run = wandb.init(config={'lr': 0.5, 'layers': 1, 'extra': 'kept', 'model': {'depth': 9, 'width': 4}},"
        " project='p')\n"
        "wandb.config.update({'lr': 0.7})\n"  # the sweep's value is locked: ignored
        "wandb.log({'loss': 1.0})\n"
        "print(json.dumps({'config': dict(wandb.config), 'id': run.id, 'project': run.project,"
        " 'sweep': run.sweep_id, 'group': run.group}))\n"
        "wandb.finish()\n"
    )
    env = {**offline_env(tmp_path), **bridge.env}
    r = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    config = seen["config"]
    assert {k: config[k] for k in ("lr", "layers", "act", "flag", "none", "text")} == {
        k: PARAMS[k] for k in ("lr", "layers", "act", "flag", "none", "text")
    }
    assert config["extra"] == "kept"
    # wandb merges a nested group with the script's defaults, the sweep's values winning
    assert config["model"] == {"depth": 2, "width": 4, "block": {"kind": "res", "widths": [64, 128]}}
    assert (seen["id"], seen["project"], seen["sweep"], seen["group"]) == (
        "abc123-7",
        "p",
        None,
        "sweepq-abc123",
    )
    assert bridge.rows() == [{"loss": 1.0, "_step": 0}]
    assert [p.name for p in bridge.run_dirs()] == [run_file(tmp_path / "abc123").parent.name]


def test_rows_come_only_from_this_attempts_own_runs(logged: Path, tmp_path: Path) -> None:
    """Other trials' runs share the sweep's directory; a run left by an earlier attempt of the
    same trial (a retry on this host) ended before this attempt began."""
    bridge = TrialBridge("s9-2", "s9", tmp_path)
    bridge.prepare({"x": 1})
    runs = bridge.runs_dir
    data = logged.read_bytes()

    def place(name: str, run_id: str, age: float = 0.0) -> None:
        d = runs / name
        d.mkdir(parents=True)
        f = d / f"run-{run_id}.wandb"
        f.write_bytes(data)
        if age:
            os.utime(f, (time.time() - age, time.time() - age))

    place("offline-run-20260101_000000-s9-2", "s9-2", age=3600)  # an earlier attempt's
    place("offline-run-20260101_000001-s9-20", "s9-20")  # another trial's
    place("offline-run-20260101_000002-s9-1", "s9-1")  # another trial's
    (runs / "latest-run").symlink_to(runs / "offline-run-20260101_000002-s9-1")
    assert bridge.rows() == []
    place("offline-run-20260101_000003-s9-2", "s9-2")
    assert canonical(bridge.rows()) == canonical(EXPECTED)
    assert bridge.rows() == []
