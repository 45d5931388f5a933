"""``sweepq web``: the dashboard and HTTP API on werkzeug's threaded server.

Why werkzeug and not gunicorn/waitress: it ships with Flask (no extra dependency), handles the
dashboard's few concurrent pollers fine, and shuts down cleanly on SIGTERM (compose, systemd).
Put a reverse proxy in front for TLS.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

import click

from sweepq.cli import EXIT_BAD_INPUT, CliError, main

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _preload() -> None:
    try:
        import sklearn.ensemble  # noqa: F401
    except Exception:  # only a warm-up: the endpoint reports a real failure
        pass


@main.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--flower-url", default=None,
              help="Flower's URL for the dashboard's link (default: $SWEEPQ_FLOWER_URL or http://127.0.0.1:5555).")
def web_cmd(host: str, port: int, flower_url: str | None) -> None:
    """The Flask dashboard and HTTP API (set SWEEPQ_API_TOKEN to require a bearer token)."""
    from werkzeug.serving import make_server

    from sweepq.cli.sweep_cmds import open_session
    from sweepq.web import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings: dict[str, object] = {"flower_url": flower_url} if flower_url else {}
    if host in LOOPBACK and not os.environ.get("SWEEPQ_WEB_ALLOWED_HOSTS"):
        # only this machine can reach it: accept only this machine's names (DNS rebinding)
        settings["allowed_hosts"] = ["127.0.0.1", "localhost", "[::1]", "::1"]
    s = open_session()
    try:
        app = create_app(s.store, settings)
        # bind here, not in werkzeug: its own bind error is several lines and sys.exit(1)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())
        sock.close()  # the server holds its own duplicate of the socket
        token = " (API token required)" if os.environ.get("SWEEPQ_API_TOKEN") else ""
        click.echo(f"sweepq web on http://{host}:{server.socket.getsockname()[1]}/ namespace {s.store.ns}{token}", err=True)

        def _stop(*_: object) -> None:
            # shutdown() blocks until serve_forever returns: call it off the signal handler
            threading.Thread(target=server.shutdown, daemon=True).start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
        # import scikit-learn now, off the request path: the first parameter-importance request
        # would otherwise pay its import (seconds on a busy machine)
        threading.Thread(target=_preload, name="sweepq-preload", daemon=True).start()
        server.serve_forever(poll_interval=0.2)
        server.server_close()
    finally:
        s.close()
