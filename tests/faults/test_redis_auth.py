"""Redis passwords and TLS through the URL: the controller, the workers (Celery's broker
connection included) and the store all use SWEEPQ_REDIS_URL as given."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import (
    OwnRedis,
    _free_port,
    check_sweep,
    describe,
    make_config,
    sweep_done,
    wait_registered,
)

pytestmark = [pytest.mark.redis, pytest.mark.faults]

PASSWORD = "0f3c9a7e5b2d4c1a8e6f0b9d7c5a3e1f"


def _certs(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    ca_key, ca, key, csr, crt = (
        d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=sweepq-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return ca, crt, key


def _run_sweep(
    srv: OwnRedis, sq_env: dict[str, str], namespace: str, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweepq.controller import Controller
    from sweepq.store import Store

    monkeypatch.setenv("SWEEPQ_REDIS_URL", srv.url)
    sq_env["SWEEPQ_REDIS_URL"] = srv.url
    store = Store(url=srv.url, namespace=namespace)
    sid = store.create_sweep(make_config(run_cap=3))
    w = start_worker(concurrency=2, wait=False)
    wait_registered(store, w.name, w)
    ctl = Controller(store, tick=0.2)
    th = threading.Thread(target=ctl.run, daemon=True)
    th.start()
    try:
        wait_for(
            lambda: sweep_done(store, sid),
            60,
            what="sweep end",
            info=lambda: describe(store, sid) + w.output()[-2000:],
        )
        check_sweep(store, sid, expect={"finished": 3}, n_trials=3)
    finally:
        ctl.stop_event.set()
        th.join(10)
        # while this server still answers: a worker stopped after it is gone waits out its
        # broker reconnects (about 10 s) before it exits
        w.stop()


def test_password_in_url(tmp_path: Path, sq_env, namespace, start_worker, monkeypatch):  # noqa: ANN001
    import redis

    port = _free_port()
    srv = OwnRedis(
        tmp_path, extra=["--requirepass", PASSWORD], url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0", port=port
    )
    srv.start()
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        _run_sweep(srv, sq_env, namespace, start_worker, monkeypatch)
    finally:
        srv.stop(signal.SIGKILL)


def test_tls_with_verification_in_url(tmp_path: Path, sq_env, namespace, start_worker, monkeypatch):  # noqa: ANN001
    ca, crt, key = _certs(tmp_path)
    port = _free_port()
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    srv = OwnRedis(
        tmp_path,
        url=url,
        port=0,
        extra=[
            "--requirepass",
            PASSWORD,
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(crt),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
        ],
    )
    srv.start()
    try:
        _run_sweep(srv, sq_env, namespace, start_worker, monkeypatch)
    finally:
        srv.stop(signal.SIGKILL)
