"""The routes outside ``/api``: the dashboard page, ``/healthz``, Plotly's script and
``/metrics``.

Everything the page loads is served from here: sweepq is self-hosted and must work offline, so
Plotly's JavaScript is streamed straight from the installed ``plotly`` Python package (no 4 MB copy
in the repository, and always the version pip installed), and the page's data comes from
``/api``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, send_file

from sweepq.web.errors import error
from sweepq.web.security import token_ok
from sweepq.web.state import current

bp = Blueprint("views", __name__)


def plotly_js_path() -> Path:
    """The minified Plotly bundle shipped inside the installed ``plotly`` package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@bp.get("/")
def index() -> str:
    """The single-page dashboard; the data comes from /api (the shell itself needs no token)."""
    w = current()
    return render_template(
        "index.html",
        flower_url=w.settings.flower_url,
        auth=bool(w.settings.api_token),
        poll_ms=w.settings.poll_ms,
        namespace=w.store.ns,
    )


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness for load balancers and compose: 200 when Redis answers, else 503. Without
    the token (when one is set) only ``{"ok"}``: a probe needs no more, a stranger no more."""
    w = current()
    try:
        ok = w.store.ping()
    except Exception:
        ok = False
    body: dict[str, Any] = {"ok": ok}
    if token_ok(w.settings.api_token):
        body.update(redis=ok, namespace=w.store.ns)
    return jsonify(body), (200 if ok else 503)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format (needs the token too when one is set: it names every sweep)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    w = current()
    if not token_ok(w.settings.api_token):
        return error(401, "missing or wrong API token")
    return Response(
        generate_latest(w.registry),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


@bp.get("/vendor/plotly.min.js")
def plotly_js() -> Response:
    """Plotly from the installed package, cached by browsers for a day."""
    return send_file(plotly_js_path(), mimetype="text/javascript", max_age=86400, conditional=True)
