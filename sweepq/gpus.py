"""GPU slots: one trial per GPU (or ``gpus_per_trial`` GPUs per trial), never two on one GPU.

Why lock files: a GPU box may run several Celery pool children, or several workers, at once. Each
GPU has a lock file on the host; a trial holds an ``flock`` on the files of its GPUs, and the lock's
file descriptor is inherited by the trial's process, so the slot is freed only when the worker
child *and* the trial process are gone (a SIGKILLed pool child does not free a GPU that its
orphaned training run still uses). No daemon, no Redis round trip, works across processes.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from sweepq.settings import Settings
from sweepq.store.keys import namespace_from_env


def parse_gpu_list(text: str) -> list[str]:
    """``"0,1,3"`` -> ``["0", "1", "3"]``; empty or ``none`` -> ``[]``."""
    text = (text or "").strip()
    if not text or text.lower() in ("none", "-", "cpu"):
        return []
    return [g.strip() for g in text.split(",") if g.strip()]


def detect_gpus() -> list[str]:
    """This machine's GPUs: ``SWEEPQ_GPUS`` if set, else ``nvidia-smi -L``, else /dev/nvidiaN."""
    env = Settings.from_env().gpus
    if env is not None:
        return parse_gpu_list(env)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
            n = sum(1 for line in out.splitlines() if line.startswith("GPU "))
            if n:
                return [str(i) for i in range(n)]
        except (OSError, subprocess.SubprocessError):
            pass
    devs = sorted(
        int(m.group(1)) for p in glob.glob("/dev/nvidia*") if (m := re.fullmatch(r"/dev/nvidia(\d+)", p))
    )
    return [str(i) for i in devs]


@dataclass
class SlotLease:
    """The GPUs one trial holds; ``visible_devices`` is its CUDA_VISIBLE_DEVICES (None: no GPUs)."""

    gpus: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    @property
    def visible_devices(self) -> str | None:
        return ",".join(self.gpus) if self.gpus else None

    def release(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)  # closing our copy; the lock ends when the trial's copy closes too
            except OSError:
                pass
        self.fds = []


class SlotPool:
    """The GPUs of this host, shared by every worker process through lock files."""

    def __init__(self, gpus: list[str], lock_dir: str | None = None) -> None:
        self.gpus = gpus
        self.lock_dir = (
            lock_dir
            or Settings.from_env().gpu_lock_dir
            or os.path.join(tempfile.gettempdir(), f"sweepq-gpus-{namespace_from_env()}")
        )

    _cached: SlotPool | None = None

    @classmethod
    def for_this_worker(cls) -> SlotPool:
        """This process's pool; GPU detection (``nvidia-smi``) runs once per process."""
        if cls._cached is None:
            cls._cached = cls(detect_gpus())
        return cls._cached

    def acquire(self, n: int = 1, poll: float = 0.2, timeout: float | None = None) -> SlotLease:
        """Block until ``n`` GPUs are free and hold them; no GPUs on this host -> an empty lease."""
        if not self.gpus:
            return SlotLease()
        n = max(1, min(n, len(self.gpus)))
        os.makedirs(self.lock_dir, exist_ok=True)
        start = time.monotonic()
        while True:
            held: list[tuple[str, int]] = []
            for g in self.gpus:
                fd = os.open(os.path.join(self.lock_dir, f"gpu{g}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                held.append((g, fd))
                if len(held) == n:
                    return SlotLease([h[0] for h in held], [h[1] for h in held])
            for _, fd in held:
                os.close(fd)
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"no {n} free GPU(s) among {self.gpus}")
            time.sleep(poll)
