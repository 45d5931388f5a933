"""``sweepq web``: the dashboard and HTTP API on werkzeug's threaded server.

Why werkzeug and not gunicorn/waitress: it ships with Flask (no extra dependency), handles the
dashboard's few concurrent pollers fine, and shuts down cleanly on SIGTERM (compose, systemd).
Put a reverse proxy in front for TLS (``--trusted-proxies``).

Secure by default: the API creates sweeps, and a sweep's command runs on every worker, so on an
address other machines can reach the server refuses to start without ``SWEEPQ_API_TOKEN`` unless
``--open-api`` says that is really wanted.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading

import click

from sweepq.cli import EXIT_BAD_INPUT, CliError, main


def _preload() -> None:
    try:
        import sklearn.ensemble  # noqa: F401
    except Exception:  # only a warm-up: the endpoint reports a real failure
        pass


@main.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--flower-url",
    default=None,
    help="Flower's URL for the dashboard's link (default: $SWEEPQ_FLOWER_URL or http://127.0.0.1:5555).",
)
@click.option(
    "--trusted-proxies",
    default=None,
    metavar="N",
    help="Reverse proxies in front that set X-Forwarded-For/-Proto/-Host/-Port "
    "(default: $SWEEPQ_TRUSTED_PROXIES or 0: the headers are ignored).",
)
@click.option(
    "--open-api",
    is_flag=True,
    help="Serve the API without a token on a non-loopback address: anyone who reaches the "
    "port can create sweeps, i.e. run commands on the workers.",
)
def web_cmd(
    host: str, port: int, flower_url: str | None, trusted_proxies: str | None, open_api: bool
) -> None:
    """The Flask dashboard and HTTP API (set SWEEPQ_API_TOKEN to require a bearer token; required
    unless --host is a loopback address or --open-api is given)."""
    from werkzeug.serving import make_server

    from sweepq.cli.sweep_cmds import open_session
    from sweepq.settings import Settings
    from sweepq.web import WebSettings, create_app, is_loopback, parse_trusted_proxies

    env = Settings.from_env()
    token = env.api_token
    if not token and not open_api and not is_loopback(host):
        raise CliError(
            f"refusing to serve the API on {host} without a token: set SWEEPQ_API_TOKEN "
            "(e.g. export SWEEPQ_API_TOKEN=$(openssl rand -hex 24)), or pass --open-api "
            "to let anyone who reaches the port run commands on the workers",
            EXIT_BAD_INPUT,
        )
    try:
        if trusted_proxies is None:
            proxies = parse_trusted_proxies(env.trusted_proxies)
        else:
            proxies = parse_trusted_proxies(trusted_proxies, "--trusted-proxies")
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    web = WebSettings.from_settings(env, trusted_proxies=proxies, flower_url=flower_url or env.flower_url)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    s = open_session()
    try:
        app = create_app(s.store, web)
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
        mode = " (API token required)" if token else ""
        if not token and not is_loopback(host):
            mode = " (open API: no token; anyone who reaches the port can run commands on the workers)"
        if proxies:
            mode += f" behind {proxies} trusted prox{'y' if proxies == 1 else 'ies'}"
        click.echo(
            f"sweepq web on http://{host}:{server.socket.getsockname()[1]}/ namespace {s.store.ns}{mode}",
            err=True,
        )

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
