"""Every ``SWEEPQ_*`` environment variable, read in one place.

An entry point (a CLI command, a Celery worker process, the web app factory, a controller made by
a test) reads them once with :meth:`Settings.from_env` and passes what it needs down; nothing
reads the environment at import time, so a process that sets a variable after importing sweepq
(a test, ``sweepq run`` starting its embedded server) is obeyed. The README's environment table is
the user-facing list; each field says what it means here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sweepq.errors import BadInput
from sweepq.store.connection import DEFAULT_REDIS_URL
from sweepq.store.keys import DEFAULT_NAMESPACE

DEFAULT_FLOWER_URL = "http://127.0.0.1:5555"
_TRUE = ("1", "true", "yes", "on")


class SettingsError(BadInput, ValueError):
    """An environment variable whose value cannot be used (exit 2, one line naming it)."""


_FALSE = ("0", "false", "no", "off")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name}: must be a number of seconds (got {raw!r})") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name}: must be an integer (got {raw!r})") from None


@dataclass(frozen=True)
class Settings:
    """sweepq's configuration from its environment (defaults as documented in the README)."""

    redis_url: str = DEFAULT_REDIS_URL  # SWEEPQ_REDIS_URL: the store (and the broker by default)
    redis_url_given: bool = False  # SWEEPQ_REDIS_URL was set (else the CLI may start an embedded one)
    broker_url: str | None = None  # SWEEPQ_BROKER_URL: another Celery broker (None: the store's URL)
    namespace: str = DEFAULT_NAMESPACE  # SWEEPQ_NAMESPACE: prefix of every key, Celery's too
    api_token: str | None = None  # SWEEPQ_API_TOKEN: the HTTP API and dashboard require it
    flower_url: str = DEFAULT_FLOWER_URL  # SWEEPQ_FLOWER_URL: where the dashboard's Flower links point
    # SWEEPQ_WEB_ALLOWED_HOSTS: the Host names `sweepq web` answers (comma-separated; "*": any)
    web_allowed_hosts: tuple[str, ...] = ()
    # SWEEPQ_TRUSTED_PROXIES as given: how many reverse proxies' X-Forwarded-* `sweepq web`
    # believes; its value is checked where it is used (sweepq.web.security.parse_trusted_proxies),
    # so a wrong one stops the web server only
    trusted_proxies: str = ""
    # SWEEPQ_LEASE_TTL: seconds a trial's lease lasts unrenewed (workers renew every TTL/5 and
    # fence at 0.7 TTL; the controller reaps after the TTL and reads each trial's own)
    lease_ttl: float = 30.0
    # SWEEPQ_VISIBILITY_TIMEOUT: Celery's redelivery of unacked messages, a last-resort net only
    visibility_timeout: float = 7 * 24 * 3600.0
    task_events: bool = False  # SWEEPQ_TASK_EVENTS: Celery task events (Flower turns them on anyway)
    batch_max: int = 32  # SWEEPQ_BATCH_MAX: most very short trials in one Celery message; 1: off
    log_dir: str | None = None  # SWEEPQ_LOG_DIR: trials' output (else .sweepq/logs in the workdir)
    workdir: str | None = None  # SWEEPQ_WORKDIR: where workers run trials (else their cwd)
    gpus: str | None = None  # SWEEPQ_GPUS: this worker's GPU ids ('' none; unset: detected)
    gpu_lock_dir: str | None = None  # SWEEPQ_GPU_LOCK_DIR: per-GPU slot locks shared on a host
    fence_dir: str | None = None  # SWEEPQ_FENCE_DIR: trials' fence deadlines for the worker's main process
    trial_cgroups: bool = True  # SWEEPQ_TRIAL_CGROUPS=0: keep trials' processes by marker, not cgroup
    debug: bool = False  # SWEEPQ_DEBUG: the CLI shows tracebacks
    wandb: str = "auto"  # SWEEPQ_WANDB: auto (when wandb is installed) | on | off: the W&B bridge
    # a `sweepq agent` worker: its name, its --count, and the sweep it is bound to
    agent_name: str = ""  # SWEEPQ_AGENT_NAME
    agent_count: int = 0  # SWEEPQ_AGENT_COUNT
    agent_sweep: str = ""  # SWEEPQ_AGENT_SWEEP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment (``os.environ`` by default) gives; :class:`SettingsError`
        names a variable whose value cannot be used."""
        raw = environ_bytes() if env is None else None
        if raw is not None:
            # a worker asks several times per trial: parse again only when a SWEEPQ_ variable
            # changed (reading two dozen variables through os.environ was a tenth of the runner's
            # own CPU per trial, profiled). Bytes, so that nothing is decoded to compare.
            key = tuple(kv for kv in raw.items() if kv[0].startswith(b"SWEEPQ_"))
            memo = _MEMO.get(key)
            if memo is None:
                memo = cls.from_env(dict(os.environ))
                _MEMO.clear()  # one entry: the environment as it is now
                _MEMO[key] = memo
            return memo
        e = os.environ if env is None else env
        redis_url = e.get("SWEEPQ_REDIS_URL") or (e.get("SWEEPQ_DEFAULT_REDIS_URL") or DEFAULT_REDIS_URL)
        cgroups = e.get("SWEEPQ_TRIAL_CGROUPS", "").strip().lower()
        return cls(
            redis_url=redis_url,
            redis_url_given=bool(e.get("SWEEPQ_REDIS_URL")),
            broker_url=e.get("SWEEPQ_BROKER_URL") or None,
            namespace=e.get("SWEEPQ_NAMESPACE") or DEFAULT_NAMESPACE,
            api_token=e.get("SWEEPQ_API_TOKEN") or None,
            flower_url=e.get("SWEEPQ_FLOWER_URL") or DEFAULT_FLOWER_URL,
            web_allowed_hosts=tuple(h for h in e.get("SWEEPQ_WEB_ALLOWED_HOSTS", "").split(",") if h),
            trusted_proxies=e.get("SWEEPQ_TRUSTED_PROXIES", ""),
            lease_ttl=_float(e, "SWEEPQ_LEASE_TTL", 30.0),
            visibility_timeout=_float(e, "SWEEPQ_VISIBILITY_TIMEOUT", 7 * 24 * 3600.0),
            task_events=e.get("SWEEPQ_TASK_EVENTS", "").strip().lower() in _TRUE,
            batch_max=max(1, _int(e, "SWEEPQ_BATCH_MAX", 32)),
            log_dir=e.get("SWEEPQ_LOG_DIR") or None,
            workdir=e.get("SWEEPQ_WORKDIR") or None,
            gpus=e.get("SWEEPQ_GPUS"),
            gpu_lock_dir=e.get("SWEEPQ_GPU_LOCK_DIR") or None,
            fence_dir=e.get("SWEEPQ_FENCE_DIR") or None,
            trial_cgroups=cgroups not in _FALSE,
            debug=bool(e.get("SWEEPQ_DEBUG")),
            wandb=e.get("SWEEPQ_WANDB", "").strip().lower() or "auto",
            agent_name=e.get("SWEEPQ_AGENT_NAME", ""),
            agent_count=_int(e, "SWEEPQ_AGENT_COUNT", 0),
            agent_sweep=e.get("SWEEPQ_AGENT_SWEEP", ""),
        )


_MEMO: dict[tuple[tuple[bytes, bytes], ...], Settings] = {}


def environ_bytes() -> dict[bytes, bytes] | None:
    """``os.environ``'s own dict of bytes (POSIX), else None: iterating or copying it costs
    microseconds, where the Mapping views decode or check every entry (0.3 ms per trial in a
    worker, profiled). Read-only for callers."""
    raw = getattr(os.environ, "_data", None) if os.name == "posix" else None
    return raw if isinstance(raw, dict) else None
