"""W&B scripts unchanged: a trial whose program imports ``wandb`` (and no sweepq) runs as it
would under ``wandb agent``, and sweepq sees every ``wandb.log`` row.

Before the trial starts (:meth:`TrialBridge.prepare`), sweepq does what W&B's agent does for a
run: it writes the trial's parameters to a file in ``$WANDB_DIR/wandb/sweep-<sweep>/`` in
the agent's format (``wandb_version: 1``, then ``name: {value: v}`` per top-level parameter,
nested groups as plain dicts under ``value``) and points ``WANDB_SWEEP_PARAM_PATH`` at it, so
``wandb.init(config=defaults)`` puts those values into ``wandb.config`` over the defaults, locked
as in a W&B sweep. ``WANDB_RUN_ID`` is the trial id and ``WANDB_DIR`` one directory per sweep
(see :class:`TrialBridge`), where wandb keeps each trial's run directory for a later
``wandb sync``. Unless the worker's environment sets ``WANDB_MODE``, the run is offline (no
login, no network; W&B's error reporting off too), so nothing leaves the machine.

``WANDB_SWEEP_ID`` is deliberately not set: wandb writes it into the run, and W&B's server then
refuses the run (``sweep <id> not found``) when it is synced or logged online, because the sweep
is sweepq's, not W&B's. Without it wandb still locks the sweep's values over the defaults (the
lock comes from the parameters file alone) and keeps the script's ``project=``. Runs of one sweep
share the W&B run group ``sweepq-<sweep id>`` instead (unless ``WANDB_RUN_GROUP`` is set).

While the trial runs (:meth:`TrialBridge.rows`, called each time the runner collects metrics),
sweepq reads the run's transaction log, ``run-<id>.wandb`` in its run directory, which wandb
writes in offline and online mode alike; wandb is asked to flush it every second
(``x_transaction_log_flush_interval``, 15 s by default), so rows arrive live for the stopping
rules. Only the bytes added since the last look are read; a record not yet complete is read when
the rest arrives.

The format (as wandb's own Go reader and writer define it): a 7-byte file header (``:W&B``, magic
0xBEE1 little-endian, version 0), then LevelDB-log records in 32 KiB blocks counted from the start
of the file (so the first block holds 32 KiB - 7 bytes). A chunk is a 7-byte header (CRC-32/IEEE
of the type byte and payload, little-endian uint32; payload length, uint16; type: 1 full,
2 first, 3 middle, 4 last) and its payload; a chunk never crosses a block, and fewer than 7 bytes
left in a block are zero padding. A record (one or more chunks) is a protobuf ``Record``
(``wandb/proto/wandb_internal.proto``). A bad checksum skips the rest of its block, as wandb's
reader does.

Only the few protobuf fields sweepq needs are decoded, by hand (``_fields``): importing
``wandb.proto`` would import the whole wandb package (half a second, 700 modules) into every
worker process, and tie sweepq to wandb's protobuf runtime. The test suite checks the decoder
against wandb's own definitions on logs wandb wrote.

What a row is: each history record (one committed ``wandb.log``) becomes a dict of its items,
nested keys joined with ``.`` (``wandb.log({"val": {"loss": x}})`` gives ``val.loss``, the name
W&B's history uses), values as logged (JSON), and ``_step`` (wandb's step). wandb's own
``_runtime``, ``_timestamp`` and ``_wandb.*`` are left out, as in rows from ``sweepq.init``.
Summary records are not rows: wandb writes one after every ``wandb.log`` (they repeat the row),
and a value set only in ``wandb.summary`` stays in the W&B run; sweepq's summary of a trial is
its last logged value. ``define_metric`` records change nothing here.

Cost: nothing unless the bridge is on (:func:`enabled`): by default it is on in a worker whose
Python can import ``wandb`` (looked up once per process, without importing it), and
``SWEEPQ_WANDB=on|off`` forces it. On, a trial costs one small write over its slot's
parameters file before it starts (no new file), and one directory listing plus one ``stat`` per
run each time metrics are collected.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SWITCH", "TransactionLog", "TrialBridge", "enabled", "history_row", "prepare"]

log = logging.getLogger("sweepq.wandb")

SWITCH = "SWEEPQ_WANDB"  # auto (default) | on | off
FLUSH_INTERVAL_S = "1"  # wandb's transaction-log flush interval for trials (its default: 15 s)

FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CHUNK = struct.Struct("<IHB")

# protobuf field numbers (wandb/proto/wandb_internal.proto)
_RECORD_HISTORY = 2
_HISTORY_ITEM, _HISTORY_STEP = 1, 2
_STEP_NUM = 1
_ITEM_KEY, _ITEM_NESTED_KEY = 1, 2
_ITEM_NONE, _ITEM_BOOL, _ITEM_INT, _ITEM_NUMBER, _ITEM_TEXT, _ITEM_JSON = 3, 4, 5, 6, 7, 8
_ITEM_VALUE_JSON = 16
_DROPPED = frozenset({"_runtime", "_timestamp"})  # wandb's own keys in every row

_available: bool | None = None


def enabled() -> bool:
    """Whether trials started by this process get the bridge: ``SWEEPQ_WANDB`` (``on``/``off``)
    when set, else whether this Python can import ``wandb``. The lookup finds the package without
    importing it and is done once per process; the switch is read each time (tests, a worker
    whose trials run another interpreter that has wandb: ``SWEEPQ_WANDB=on``)."""
    from sweepq.settings import Settings

    value = Settings.from_env().wandb
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    global _available
    if _available is None:
        _available = installed("wandb")
    return _available


def installed(name: str) -> bool:
    """Whether this Python can import the package ``name`` (found, not imported). A bare folder
    of that name on the path is not it: W&B's run folder ``./wandb`` in the worker's directory
    would otherwise pass for the package (a namespace package has no origin)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def prepare(run_id: str, sweep_id: str, params: Mapping[str, Any], log_dir: Path) -> TrialBridge | None:
    """The bridge of one trial, its parameters file written, or None when the bridge is off."""
    if not enabled():
        return None
    base = os.environ.get("WANDB_DIR")
    bridge = TrialBridge(run_id, sweep_id, Path(base) if base else Path(log_dir) / "wandb")
    bridge.prepare(params)
    return bridge


def param_file_text(params: Mapping[str, Any]) -> str:
    """The parameters file as W&B's agent writes it (``config_util.save_config_file_from_dict``):
    only the top level is wrapped in ``{value: ...}``, keys in the sweep's order. libyaml's
    emitter where PyYAML has it: the same text, a quarter of the time."""
    import yaml

    text = "wandb_version: 1"
    if params:  # an empty mapping would add "{}", which wandb cannot read back
        text += "\n\n" + yaml.dump(
            {k: {"value": v} for k, v in params.items()},
            Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
            default_flow_style=False,
            allow_unicode=True,
            sort_keys=False,
        )
    return text


_made: set[Path] = set()  # the parameter directories this process has made (one mkdir per sweep)


def _rewrite(path: Path, data: bytes) -> None:
    """Make ``path`` hold exactly ``data``, writing over what it held. A new file per trial, or a
    rewrite through O_TRUNC, costs a metadata commit on ext4 (1-3 ms each on a busy disk,
    measured); writing over the old bytes and cutting off the rest costs microseconds."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(f"short write to {path}")
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _slot() -> str:
    """This worker slot: a process (a thread, in a threaded pool) runs one trial at a time."""
    return f"{os.getpid()}-{threading.get_native_id()}"


class TrialBridge:
    """One trial's side of the bridge: its environment and parameters file before it starts, the
    rows of its wandb runs while it runs.

    Layout, as under ``wandb agent`` with one ``WANDB_DIR`` for the whole sweep::

        <base>/<sweep id>/                       the trials' WANDB_DIR
            wandb/sweep-<sweep id>/config-<slot>.yaml   the parameters of the slot's trial
            wandb/offline-run-<time>-<run id>/   each trial's run (run-<time>-… when online)

    ``<base>`` is the worker's ``WANDB_DIR`` if it has one, else ``wandb/`` in sweepq's log
    directory. One directory per sweep (made once per process) and one parameters file per
    worker slot (``<pid>-<thread id>``), rewritten in place for each trial: the slot's previous
    trial has ended, every process of it included, before the next one's file is written. New
    files and directories per trial cost a short trial more than the rest of its dispatch
    (``benchmarks/dispatch.py``); each run keeps its own parameters in its log.
    """

    def __init__(self, run_id: str, sweep_id: str, base: Path) -> None:
        self.run_id = run_id
        self.sweep_id = sweep_id
        self.directory = base / sweep_id
        self.runs_dir = self.directory / "wandb"
        self.param_path = self.runs_dir / f"sweep-{sweep_id}" / f"config-{_slot()}.yaml"
        self.env: dict[str, str] = {}
        self.started = time.time()
        self._logs: dict[str, TransactionLog] = {}
        self._suffix = f"-{run_id}"

    def prepare(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Write the parameters file and return the trial's wandb variables (also in ``env``).

        A file that cannot be written is logged, and the trial is pointed at a file that does
        not exist: the script's ``wandb.init`` then fails, visibly, instead of running with the
        defaults or the slot's previous parameters as if they were this trial's."""
        import yaml

        self.started = time.time()
        folder = self.param_path.parent
        try:
            try:
                data = param_file_text(params).encode("utf-8")
            except (UnicodeError, ValueError, yaml.YAMLError) as exc:  # a value YAML cannot hold (not UTF-8)
                raise OSError(f"a parameter value wandb cannot read: {exc}") from None
            if folder not in _made:
                folder.mkdir(parents=True, exist_ok=True)
                _made.add(folder)
            try:
                _rewrite(self.param_path, data)
            except FileNotFoundError:  # removed since this process made it
                folder.mkdir(parents=True, exist_ok=True)
                _rewrite(self.param_path, data)
        except OSError as exc:
            log.warning(
                "trial %s: cannot write the wandb parameters file %s: %s", self.run_id, self.param_path, exc
            )
            with contextlib.suppress(OSError):
                self.param_path.unlink()
            self.param_path = self.param_path.with_name(f"unwritten-{self.run_id}.yaml")
        env = {
            "WANDB_SWEEP_PARAM_PATH": str(self.param_path),
            "WANDB_RUN_ID": self.run_id,
            "WANDB_DIR": str(self.directory),
        }
        inherited = os.environ
        if "WANDB_MODE" not in inherited:
            env["WANDB_MODE"] = "offline"
            if "WANDB_ERROR_REPORTING" not in inherited:
                env["WANDB_ERROR_REPORTING"] = "false"
        if "WANDB_RUN_GROUP" not in inherited:
            env["WANDB_RUN_GROUP"] = f"sweepq-{self.sweep_id}"
        if "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL" not in inherited:
            env["WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"] = FLUSH_INTERVAL_S
        self.env = env
        return env

    def run_dirs(self) -> list[Path]:
        """This trial's wandb run directories found so far (one per ``wandb.init``)."""
        return [txlog.path.parent for txlog in self._logs.values()]

    def rows(self) -> list[dict[str, Any]]:
        """The rows logged since the last call, from every run of this trial (usually one), in
        the order each run logged them. Cheap when nothing changed: a listing of the sweep's
        wandb directory and a ``stat`` per run."""
        try:
            names = os.listdir(self.runs_dir)
        except OSError:
            return []
        for name in sorted(names):
            if name in self._logs or not self._is_mine(name):
                continue
            path = self.runs_dir / name / f"run-{self.run_id}.wandb"
            try:
                # a run that an earlier attempt of this trial left here (a retry on this host)
                # ended before this attempt began; this attempt's run is written after it began
                if os.stat(path).st_mtime < self.started - 2.0:
                    continue
            except OSError:
                continue  # wandb has not created it yet: look again next time
            self._logs[name] = TransactionLog(path)
        out: list[dict[str, Any]] = []
        for txlog in self._logs.values():
            out.extend(txlog.rows())
        return out

    def _is_mine(self, name: str) -> bool:
        """A run directory of this trial: ``offline-run-YYYYMMDD_HHMMSS-<run id>`` (``run-…``
        online); not the ``latest-run`` link, the parameters folder or another trial's run."""
        if not name.endswith(self._suffix):
            return False
        prefix = name[: -len(self._suffix)]
        stamp = prefix.rsplit("-", 1)[-1]
        return (
            prefix in (f"run-{stamp}", f"offline-run-{stamp}")
            and len(stamp) == 15
            and stamp[8] == "_"
            and (stamp[:8] + stamp[9:]).isdigit()
        )


class TransactionLog:
    """Reads one wandb transaction log as it grows: each call of :meth:`records` returns the
    records completed since the previous call.

    Invariant: ``_buf`` holds the file's bytes from offset ``_pos`` on, and the next read starts
    at ``_pos + len(_buf)``. A chunk or a record not yet complete at the end of the file stays
    in ``_buf`` (or ``_record``) until the rest arrives.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pos = 0
        self._buf = b""
        self._record: bytearray | None = None  # payload of a multi-chunk record being assembled
        self._header_ok = False
        self.problem = ""  # why the file is not read at all (not a wandb log, another version)
        self.skipped_blocks = 0  # blocks (rests of) skipped for a bad checksum or a bad chunk
        self.bad_records = 0  # complete records that are not the protobuf they should be

    def _read_new(self) -> bool:
        """Append the bytes the file gained; False when there are none."""
        end = self._pos + len(self._buf)
        try:
            if os.stat(self.path).st_size <= end:
                return False
            with open(self.path, "rb") as f:
                f.seek(end)
                data = f.read()
        except OSError:
            return False
        if not data:
            return False
        self._buf = self._buf + data if self._buf else data
        return True

    def _skip_to(self, offset: int) -> None:
        """Continue at file offset ``offset``, dropping what lies before it."""
        have = offset - self._pos
        if have <= len(self._buf):
            self._buf = self._buf[have:]
        else:
            self._buf = b""
        self._pos = offset

    def records(self) -> list[bytes]:
        """The payloads of the records completed since the last call (each a ``Record``)."""
        if self.problem or not self._read_new():
            return []
        if not self._header_ok:
            if len(self._buf) < len(FILE_HEADER):
                return []
            if self._buf[: len(FILE_HEADER)] != FILE_HEADER:
                self.problem = f"not a wandb transaction log (header {self._buf[:7]!r})"
                log.warning("%s: %s; its rows are not read", self.path, self.problem)
                self._buf = b""
                return []
            self._header_ok = True
            self._skip_to(len(FILE_HEADER))
        out: list[bytes] = []
        buf, pos, i, n = self._buf, self._pos, 0, len(self._buf)
        while True:
            at = pos + i
            room = BLOCK - at % BLOCK
            if room < CHUNK_HEADER:
                skip = room  # the zero padding at the end of a block
            else:
                if n - i < CHUNK_HEADER:
                    break
                crc, length, kind = _CHUNK.unpack_from(buf, i)
                end = i + CHUNK_HEADER + length
                if crc == 0 and length == 0 and kind == 0:
                    skip = room  # a zeroed rest of block (a preallocated file): nothing in it
                elif CHUNK_HEADER + length > room or (
                    end <= n and zlib.crc32(buf[i + CHUNK_HEADER - 1 : end]) != crc
                ):
                    # a chunk that cannot be: as wandb's reader, trust nothing else in this block
                    skip = room
                    self.skipped_blocks += 1
                    self._record = None
                elif end > n:
                    break  # the chunk is still being written
                else:
                    payload = buf[i + CHUNK_HEADER : end]
                    i = end
                    if kind == FULL:
                        self._record = None
                        out.append(payload)
                    elif kind == FIRST:
                        self._record = bytearray(payload)
                    elif kind == MIDDLE and self._record is not None:
                        self._record += payload
                    elif kind == LAST and self._record is not None:
                        out.append(bytes(self._record + payload))
                        self._record = None
                    else:  # a middle or last chunk without its first, or an unknown type
                        self._record = None
                        self.bad_records += 1
                    continue
            if skip > n - i:  # the next block starts beyond what is there: continue from it
                self._buf, self._pos = b"", at + skip
                return out
            i += skip
        self._buf, self._pos = buf[i:], pos + i
        return out

    def rows(self) -> list[dict[str, Any]]:
        """The history rows among the new records (see the module docstring for their shape)."""
        out = []
        for payload in self.records():
            try:
                row = history_row(payload)
            except (ValueError, IndexError, UnicodeDecodeError, struct.error):
                self.bad_records += 1
                continue
            if row is not None:
                out.append(row)
        return out


# -- the protobuf wire format, for the few fields read ------------------------------------------
def _varint(b: bytes | memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(b: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message: a varint as an int, a
    length-delimited field as a memoryview, a fixed64/fixed32 as its 8/4 bytes. Raises
    ValueError or IndexError on a malformed message."""
    b = memoryview(b)
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            length, i = _varint(b, i)
            value, i = b[i : i + length], i + length
        elif wire == 1:
            value, i = b[i : i + 8], i + 8
        elif wire == 5:
            value, i = b[i : i + 4], i + 4
        else:  # groups (3, 4) are not used by wandb's messages
            raise ValueError(f"unexpected protobuf wire type {wire}")
        if i > n:
            raise ValueError("protobuf field runs past the end of its message")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _item(b: memoryview) -> tuple[str | None, Any]:
    key: str | None = None
    nested: list[str] = []
    value: Any = None
    for number, wire, v in _fields(b):
        if number == _ITEM_KEY and wire == 2:
            key = bytes(v).decode("utf-8")
        elif number == _ITEM_NESTED_KEY and wire == 2:
            nested.append(bytes(v).decode("utf-8"))
        elif number in (_ITEM_VALUE_JSON, _ITEM_JSON) and wire == 2:
            text = bytes(v).decode("utf-8")
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        elif number == _ITEM_NUMBER and wire == 1:
            value = struct.unpack("<d", v)[0]
        elif number == _ITEM_INT and wire == 0:
            value = (v >> 1) ^ -(v & 1)  # sint64, zigzag
        elif number == _ITEM_BOOL and wire == 0:
            value = bool(v)
        elif number == _ITEM_TEXT and wire == 2:
            value = bytes(v).decode("utf-8")
        elif number == _ITEM_NONE:
            value = None
    return (".".join(nested) if nested else key), value


def history_row(record: bytes | memoryview) -> dict[str, Any] | None:
    """The row of a ``Record`` that holds a history record (one ``wandb.log``), else None."""
    history = None
    for number, wire, v in _fields(record):
        if number == _RECORD_HISTORY and wire == 2:
            history = v
    if history is None:
        return None
    row: dict[str, Any] = {}
    step = 0
    for number, wire, v in _fields(history):
        if number == _HISTORY_ITEM and wire == 2:
            key, value = _item(v)
            if key is None or key in _DROPPED or key == "_wandb" or key.startswith("_wandb."):
                continue
            row[key] = value
        elif number == _HISTORY_STEP and wire == 2:
            for n2, w2, v2 in _fields(v):
                if n2 == _STEP_NUM and w2 == 0:
                    step = _signed64(v2)
    logged = row.get("_step")
    if isinstance(logged, bool) or not isinstance(logged, (int, float)):
        row["_step"] = step
    else:
        with contextlib.suppress(OverflowError, ValueError):
            row["_step"] = int(logged)
    return row
