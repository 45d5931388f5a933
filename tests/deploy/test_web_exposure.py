"""``sweepq web`` where other machines can reach it: real server processes, a real reverse proxy.

* On a non-loopback address without ``SWEEPQ_API_TOKEN`` it refuses to start (exit 2, one line
  saying how to set a token); ``--open-api`` starts it, and DNS rebinding is still stopped: only
  IP addresses, ``localhost`` and the listed names are served without a token.
* Behind a proxy (``tests/deploy/reverse_proxy.py``, which forwards as nginx/Traefik do) with
  ``--trusted-proxies 1``, the dashboard's reads and writes work whether the proxy keeps the
  browser's Host or rewrites it; without the setting, a Host-rewriting proxy's writes are refused
  as cross-site (what the setting is for).
* ``/healthz`` says only ``{"ok"}`` to a caller without the token.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, _free_port, wait_for

PROXY = Path(__file__).resolve().parent / "reverse_proxy.py"
TOKEN = "t0ken-for-tests"
SITE = "sweepq.example.com"
YAML = b"""name: via-proxy
program: train.py
method: random
metric: {name: loss, goal: minimize}
parameters:
  lr: {min: 0.001, max: 0.1}
"""
pytestmark = pytest.mark.redis


def call(
    port: int,
    method: str,
    path: str,
    host: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:port with exactly the Host (and headers) given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def web_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from sweepq.cli import main; sys.exit(main())", "web", *args]


@dataclass
class Proc:
    proc: subprocess.Popen
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_log(tmp_path: Path) -> Callable[[int], Path]:
    """Where the process serving ``port`` writes its output."""
    return lambda port: tmp_path / f"proc-{port}.log"


@pytest.fixture
def spawn(spawn_log: Callable[[int], Path]) -> Iterator[Callable[..., Proc]]:
    """Factory for real server processes (``sweepq web``, the proxy), stopped at teardown."""
    procs: list[Proc] = []

    def start(argv: list[str], env: dict[str, str], port: int, ready: Callable[[], bool]) -> Proc:
        log = spawn_log(port)
        with open(log, "ab") as out:
            p = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(ROOT)
            )
        proc = Proc(p, port, log)
        procs.append(proc)

        def up() -> bool:
            assert p.poll() is None, f"{argv[-1]} exited {p.returncode}:\n{proc.output()}"
            return ready()

        wait_for(up, 30, 0.1, f"{' '.join(argv[3:])} to answer")
        return proc

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def start_web(
    spawn: Callable[..., Proc], spawn_log: Callable[[int], Path], sq_env: dict[str, str]
) -> Callable[..., Proc]:
    def start(*args: str, host: str = "127.0.0.1", env: dict[str, str] | None = None) -> Proc:
        port = _free_port()
        e = {
            k: v
            for k, v in sq_env.items()
            if k not in ("SWEEPQ_API_TOKEN", "SWEEPQ_TRUSTED_PROXIES", "SWEEPQ_WEB_ALLOWED_HOSTS")
        }
        argv = web_argv("--host", host, "--port", str(port), *args)
        log = spawn_log(port)
        # ready once it has said where it listens (it binds first, then prints that line)
        return spawn(
            argv,
            {**e, **(env or {})},
            port,
            lambda: log.exists() and "sweepq web on" in log.read_text() and _answers(port),
        )

    return start


@pytest.fixture
def start_proxy(spawn: Callable[..., Proc], sq_env: dict[str, str]) -> Callable[..., Proc]:
    def start(upstream: int, keep_host: bool) -> Proc:
        port = _free_port()
        argv = [
            sys.executable,
            str(PROXY),
            "--port",
            str(port),
            "--upstream",
            f"127.0.0.1:{upstream}",
            "--proto",
            "https",
            *(["--keep-host"] if keep_host else []),
        ]
        return spawn(argv, dict(sq_env), port, lambda: _answers(port))

    return start


# -- refusing to start --------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "sweepq.lan"])
def test_non_loopback_without_token_exits_2(host: str, sq_env: dict[str, str]) -> None:
    env = {k: v for k, v in sq_env.items() if k != "SWEEPQ_API_TOKEN"}
    port = _free_port()
    r = subprocess.run(
        web_argv("--host", host, "--port", str(port)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "SWEEPQ_API_TOKEN" in lines[0] and "--open-api" in lines[0] and "Traceback" not in r.stderr
    assert not _answers(port)


def test_empty_token_counts_as_none(sq_env: dict[str, str]) -> None:
    env = {**sq_env, "SWEEPQ_API_TOKEN": ""}
    r = subprocess.run(
        web_argv("--host", "0.0.0.0", "--port", str(_free_port())),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert r.returncode == 2 and "SWEEPQ_API_TOKEN" in r.stderr


@pytest.mark.parametrize("value", ["x", "-1", "6"])
def test_bad_trusted_proxies_is_one_line(value: str, sq_env: dict[str, str]) -> None:
    r = subprocess.run(
        web_argv("--trusted-proxies", value, "--port", str(_free_port())),
        env=sq_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--trusted-proxies" in r.stderr


# -- an open API on all addresses still stops DNS rebinding ------------------------------------
def test_open_api_starts_and_refuses_rebound_host_names(start_web: Callable[..., Proc], store) -> None:  # noqa: ANN001
    web = start_web("--open-api", host="0.0.0.0")
    assert "open API" in web.output()
    status, _, body = call(web.port, "GET", "/api/sweeps")
    assert status == 200 and json.loads(body) == []
    # a rebinding page: its own name, resolving to this server, in Host and Origin
    evil = f"rebind.attacker.example:{web.port}"
    status, _, body = call(
        web.port,
        "POST",
        "/api/sweeps",
        host=evil,
        body=YAML,
        headers={"Origin": f"http://{evil}", "Content-Type": "application/yaml"},
    )
    assert status == 421, body
    assert b"SWEEPQ_WEB_ALLOWED_HOSTS" in body
    assert store.list_sweeps() == []
    assert call(web.port, "GET", "/", host=evil)[0] == 421
    # addresses cannot be rebound: a client using this machine's IP (or localhost) is served
    for host in (
        f"127.0.0.1:{web.port}",
        f"localhost:{web.port}",
        f"192.0.2.10:{web.port}",
        f"[::1]:{web.port}",
    ):
        assert call(web.port, "GET", "/api/sweeps", host=host)[0] == 200, host
    status, _, body = call(
        web.port, "POST", "/api/sweeps", body=YAML, headers={"Content-Type": "application/yaml"}
    )
    assert status == 201, body


def test_open_api_serves_the_listed_names(start_web: Callable[..., Proc]) -> None:
    web = start_web("--open-api", host="0.0.0.0", env={"SWEEPQ_WEB_ALLOWED_HOSTS": "sweepq.lan"})
    assert call(web.port, "GET", "/api/sweeps", host=f"sweepq.lan:{web.port}")[0] == 200
    assert call(web.port, "GET", "/api/sweeps", host=f"other.lan:{web.port}")[0] == 421
    # an explicit list is exactly what is served
    assert call(web.port, "GET", "/api/sweeps", host=f"127.0.0.1:{web.port}")[0] == 421


# -- with a token ----------------------------------------------------------------------------------
def test_token_on_all_addresses(start_web: Callable[..., Proc], namespace: str) -> None:
    web = start_web(host="0.0.0.0", env={"SWEEPQ_API_TOKEN": TOKEN})
    assert "API token required" in web.output()
    for host in (f"127.0.0.1:{web.port}", f"sweepq.lan:{web.port}"):
        assert call(web.port, "GET", "/api/sweeps", host=host)[0] == 401
        assert call(web.port, "GET", "/api/sweeps", host=host, headers=bearer())[0] == 200
    assert call(web.port, "GET", "/api/sweeps", headers=bearer("wrong"))[0] == 401
    status, _, body = call(web.port, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"ok": True}
    status, _, body = call(web.port, "GET", "/healthz", headers=bearer())
    assert status == 200 and json.loads(body) == {"ok": True, "redis": True, "namespace": namespace}


# -- behind a reverse proxy ------------------------------------------------------------------------
def _reads_and_writes(port: int, site: str, extra: dict[str, str] | None = None) -> None:
    """What the dashboard does, as a browser on https://<site>/ sends it through the proxy."""
    browser = {"Origin": f"https://{site}", "Sec-Fetch-Site": "same-origin", **(extra or {})}
    status, _, page = call(port, "GET", "/", host=site)
    assert status == 200 and b"<html" in page.lower()
    assert call(port, "GET", "/api/sweeps", host=site, headers=browser)[0] == 200
    status, headers, body = call(
        port,
        "POST",
        "/api/sweeps",
        host=site,
        body=YAML,
        headers={**browser, "Content-Type": "application/yaml"},
    )
    assert status == 201, body
    sid = json.loads(body)["id"]
    assert headers["location"] == f"/api/sweeps/{sid}"
    status, _, body = call(port, "POST", f"/api/sweeps/{sid}/pause", host=site, headers=browser)
    assert status == 200 and json.loads(body)["state"] == "paused", body
    status, _, body = call(port, "GET", f"/api/sweeps/{sid}", host=site, headers=browser)
    assert status == 200 and json.loads(body)["state"] == "paused"


@pytest.mark.parametrize("keep_host", [True, False], ids=["host-keeping", "host-rewriting"])
def test_behind_a_proxy_reads_and_writes_work(
    keep_host: bool, start_web: Callable[..., Proc], start_proxy: Callable[..., Proc]
) -> None:
    web = start_web("--trusted-proxies", "1", env={"SWEEPQ_API_TOKEN": TOKEN})
    assert "behind 1 trusted proxy" in web.output()
    proxy = start_proxy(web.port, keep_host=keep_host)
    _reads_and_writes(proxy.port, SITE, bearer())
    # a port other than https' own travels in Host and X-Forwarded-Port alike
    _reads_and_writes(proxy.port, f"{SITE}:8443", bearer())


def test_trusted_proxies_from_the_environment(
    start_web: Callable[..., Proc], start_proxy: Callable[..., Proc]
) -> None:
    web = start_web(env={"SWEEPQ_API_TOKEN": TOKEN, "SWEEPQ_TRUSTED_PROXIES": "1"})
    proxy = start_proxy(web.port, keep_host=False)
    _reads_and_writes(proxy.port, SITE, bearer())


def test_without_trusting_the_proxy_its_writes_are_refused(
    start_web: Callable[..., Proc], start_proxy: Callable[..., Proc], store
) -> None:  # noqa: ANN001
    """What ``--trusted-proxies`` fixes: the server sees the proxy's Host, the browser's Origin
    names the site, and a write looks cross-site."""
    web = start_web(env={"SWEEPQ_API_TOKEN": TOKEN})
    proxy = start_proxy(web.port, keep_host=False)
    browser = {"Origin": f"https://{SITE}", **bearer(), "Content-Type": "application/yaml"}
    assert call(proxy.port, "GET", "/api/sweeps", host=SITE, headers=bearer())[0] == 200
    status, _, body = call(proxy.port, "POST", "/api/sweeps", host=SITE, body=YAML, headers=browser)
    assert status == 403 and b"cross-site" in body
    assert store.list_sweeps() == []


def test_proxy_without_token_serves_only_listed_names(
    start_web: Callable[..., Proc], start_proxy: Callable[..., Proc]
) -> None:
    """No token behind a proxy: the forwarded Host is checked like a direct one, so a rebinding
    name that reaches the proxy is refused, and the site's own name works once listed."""
    web = start_web("--trusted-proxies", "1")
    proxy = start_proxy(web.port, keep_host=True)
    assert call(proxy.port, "GET", "/api/sweeps", host=SITE)[0] == 421
    web2 = start_web("--trusted-proxies", "1", env={"SWEEPQ_WEB_ALLOWED_HOSTS": SITE})
    proxy2 = start_proxy(web2.port, keep_host=False)
    _reads_and_writes(proxy2.port, SITE)
    assert call(proxy2.port, "GET", "/api/sweeps", host="rebind.attacker.example")[0] == 421


def test_proxy_fix_sets_scheme_host_and_client(store) -> None:  # noqa: ANN001
    """The request the views see behind one trusted proxy: the browser's scheme, Host and
    address, not the proxy's (and a client's own X-Forwarded-For cannot forge the address).
    Without the setting the same headers change nothing."""
    from flask import Flask, jsonify, request

    from sweepq.web import create_app

    def probe(app: Flask) -> dict[str, str]:
        app.add_url_rule(
            "/probe",
            "probe",
            lambda: jsonify(
                scheme=request.scheme, host=request.host, remote=request.remote_addr, root=request.url_root
            ),
        )
        forwarded = {
            "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": SITE,
            "X-Forwarded-Port": "443",
        }
        return (
            app.test_client()
            .get(
                "/probe",
                headers={"Host": "127.0.0.1:8080", **forwarded},
                environ_base={"REMOTE_ADDR": "127.0.0.1"},
            )
            .json
        )

    assert probe(create_app(store, {"api_token": TOKEN, "trusted_proxies": 1})) == {
        "scheme": "https",
        "host": SITE,
        "remote": "198.51.100.7",
        "root": f"https://{SITE}/",
    }
    assert probe(create_app(store, {"api_token": TOKEN})) == {
        "scheme": "http",
        "host": "127.0.0.1:8080",
        "remote": "127.0.0.1",
        "root": "http://127.0.0.1:8080/",
    }
    with pytest.raises(ValueError, match="0-5"):
        create_app(store, {"trusted_proxies": 7})
