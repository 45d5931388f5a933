"""The HTTP API (docs/dashboard.md): the same JSON shapes as ``sweepq ... --json``.

Each route turns a request into a store or read-model call (:mod:`sweepq.web.data`) and its
answer into JSON. Answers are JSON; errors are ``{"error": "..."}`` (plus ``"errors": [...]`` for
invalid configs) with 400 (bad input, including an id sweepq could not have made), 401 (token),
403 (a cross-site write), 404 (unknown sweep or run), 409 (an action the sweep's state forbids,
e.g. pausing a finished sweep), 503 (the store cannot serve: Redis out of memory, read-only or
unreachable) and 500 for anything else: always one JSON line, never an HTML page or a traceback
(those go to the server log; :mod:`sweepq.web.errors`). ``GET /api/sweeps/<id>/runs`` without
query parameters is the plain list of ``sweepq runs --json``; with ``offset``/``limit``/``state``/
``sort`` the server pages, filters and sorts (totals in the ``X-Total-Count`` header), so the
dashboard stays fast on sweeps with 10,000+ trials. For a multi-objective sweep (``metric:`` a
list) every run carries ``objectives`` (each objective's value by name), ``best`` answers the
Pareto front (``{"pareto": [run, ...]}``, as ``sweepq best --json``) and ``pareto`` the panel's
points.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sweepq.config import MAX_DEPTH, nesting_depth
from sweepq.errors import NotFound, SweepqError
from sweepq.ids import is_run_id, is_sweep_id, shown
from sweepq.store import Store
from sweepq.web import data
from sweepq.web.errors import error, known_error
from sweepq.web.security import api_guard
from sweepq.web.state import current

bp = Blueprint("api", __name__, url_prefix="/api")
bp.register_error_handler(SweepqError, known_error)
bp.register_error_handler(ValueError, known_error)

ACTIONS = ("pause", "resume", "stop", "cancel")
MAX_LIMIT = 5000  # most runs in one page of GET /sweeps/<id>/runs
MAX_CURVE_RUNS = 50
MAX_PARETO_POINTS = 20000  # most points ``?limit=`` may ask of GET /sweeps/<id>/pareto


@bp.before_request
def _guard() -> Response | None:
    """Cross-site writes and requests without the token are refused (sweepq.web.security)."""
    return api_guard(current().settings.api_token)


@bp.before_request
def _check_ids() -> Response | None:
    """Ids in the path are checked before any view runs, so none reaches a Redis key name
    unless sweepq could have made it."""
    args = request.view_args or {}
    if "sid" in args and not is_sweep_id(args["sid"]):
        return error(
            400, f"not a sweep id: {shown(args['sid'])} (sweep ids are 1-64 lowercase letters and digits)"
        )
    if "run_id" in args and not is_run_id(args["run_id"]):
        return error(400, f"not a run id: {shown(args['run_id'])} (run ids are <sweep id>-<number>)")
    return None


def _int_arg(name: str, default: int | None, lo: int = 0, hi: int | None = None) -> int | None:
    """The query parameter ``name`` as an integer in [lo, hi] (``default`` when absent or
    empty); ValueError (a 400) otherwise."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"{name}: must be an integer (got {raw!r})") from None
    if v < lo or (hi is not None and v > hi):
        raise ValueError(
            f"{name}: must be between {lo} and {hi}" if hi is not None else f"{name}: must be >= {lo}"
        )
    return v


def _read_config_body() -> tuple[Any, list[str]]:
    """The request body as a config source: JSON when it says so (or parses as a JSON object),
    else YAML. Bytes go to ``validate`` (never a str, which it could take for a file path)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None, ["config: the request body is empty; send the sweep config as YAML or JSON"]
    ctype = (request.mimetype or "").lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        if nesting_depth(raw) > MAX_DEPTH:  # json recurses per level: refuse before it does
            return None, [f"config: nested deeper than {MAX_DEPTH} levels; not a sweep config"]
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return None, [f"config: not valid JSON ({exc})"]
        if isinstance(body, dict) and isinstance(body.get("config"), (dict, str)) and "method" not in body:
            body = body["config"]  # {"config": {...}} or {"config": "yaml text"} wrappers
        if isinstance(body, str):
            return body.encode(), []
        return body, []
    return raw, []


def _validated_body() -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(config or None, errors, warnings) of the request body."""
    from sweepq.config import validate

    source, errors = _read_config_body()
    if errors:
        return None, errors, []
    return validate(source)


# -- sweeps -------------------------------------------------------------------------------------
@bp.get("/sweeps")
def list_sweeps() -> Response:
    """Every sweep's status (``sweepq list --json``), newest last as the CLI lists them."""
    return jsonify(data.sweep_statuses(current().store))


@bp.post("/sweeps")
def create_sweep() -> tuple[Response, int] | Response:
    """Validate and register a sweep: 201 ``{"id", "warnings"}`` or 400 ``{"errors": [...]}``."""
    config, errors, warnings = _validated_body()
    if config is None:
        return error(400, "invalid sweep config", errors=errors, warnings=warnings)
    store = current().store
    sid = store.create_sweep(config)
    if warnings:
        store.set_sweep_fields(sid, warnings=warnings)
    resp = jsonify({"id": sid, "warnings": warnings})
    resp.headers["Location"] = f"/api/sweeps/{sid}"
    return resp, 201


@bp.post("/validate")
def validate_config() -> Response:
    """Check a config without creating a sweep (the dashboard's live validation):
    ``{"ok", "errors", "warnings", "config"}``, always 200."""
    config, errors, warnings = _validated_body()
    return jsonify({"ok": config is not None, "errors": errors, "warnings": warnings, "config": config})


@bp.get("/sweeps/<sid>")
def get_sweep(sid: str) -> Response:
    """The ``status`` shape (``sweepq status --json``)."""
    return jsonify(current().store.status(sid))


@bp.get("/sweeps/<sid>/config")
def get_config(sid: str) -> Response:
    """The normalised config the sweep runs with."""
    return jsonify(data.sweep_config(current().store, sid))


@bp.post("/sweeps/<sid>/<action>")
def sweep_action(sid: str, action: str) -> Response:
    """pause | resume | stop | cancel: ``{"id", "state"}``; 409 when the state forbids it."""
    if action not in ACTIONS:
        return error(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    return jsonify({"id": sid, "state": current().store.sweep_action(sid, action)})


# -- runs ---------------------------------------------------------------------------------------
@bp.get("/sweeps/<sid>/runs")
def list_runs(sid: str) -> Response:
    """Runs in the ``run`` shape (with ``objectives`` for a multi-objective sweep). Query:
    ``state=a,b``, ``sort=[-]field`` (also ``objectives.<name>``), ``offset``, ``limit``; headers
    ``X-Total-Count`` (runs matching), ``X-Total-Unfiltered`` and ``X-Offset``."""
    cached = current().cache.get(sid)
    names = cached.objective_names()
    states = data.parse_states(request.args.get("state"))
    sort = request.args.get("sort") or ""
    if sort:
        data.check_sort(sort, names)
    total_all, trials = data.runs(cached, states, sort)
    offset = _int_arg("offset", 0) or 0
    limit = _int_arg("limit", None, lo=0, hi=MAX_LIMIT)
    page = trials[offset : offset + limit] if limit is not None else trials[offset:]
    resp = jsonify([Store.run_json(t, names) for t in page])
    resp.headers["X-Total-Count"] = str(len(trials))
    resp.headers["X-Total-Unfiltered"] = str(total_all)
    resp.headers["X-Offset"] = str(offset)
    return resp


@bp.get("/sweeps/<sid>/runs/<run_id>")
def get_run(sid: str, run_id: str) -> Response:
    """One run: the ``run`` shape (with ``objectives`` for a multi-objective sweep) plus
    ``log_tail``, ``reason``, ``history`` (values of the sweep metric, the first objective, in
    order), ``rows`` (the last ``?rows=`` logged metric rows, default 1000, for curves) and
    ``keys`` (the numeric keys it logged)."""
    w = current()
    trial = data.run_of(w.store, sid, run_id)
    rows = _int_arg("rows", 1000, lo=0, hi=5000) or 0
    return jsonify(data.run_detail(w.store, trial, rows, w.cache.objective_names(sid)))


@bp.get("/sweeps/<sid>/curves")
def get_curves(sid: str) -> Response:
    """``?runs=id1,id2&key=loss``: metric-versus-step series of chosen runs (default key: the
    sweep's metric; default runs: the 5 best; at most :data:`MAX_CURVE_RUNS`)."""
    w = current()
    metric, goal = w.store.sweep_metric(sid)
    key = request.args.get("key") or metric
    ids = [x for x in (request.args.get("runs") or "").split(",") if x][:MAX_CURVE_RUNS]
    ids = data.curve_runs(w.cache.get(sid), goal, ids)
    return jsonify({"key": key, "runs": data.curves(w.store, ids, key) if key else []})


@bp.get("/sweeps/<sid>/parallel")
def get_parallel(sid: str) -> Response:
    """Parallel-coordinates data of the best ``limit`` (default 2000) scored runs."""
    w = current()
    metric, goal = w.store.sweep_metric(sid)
    limit = _int_arg("limit", 2000, lo=1, hi=20000) or 2000
    cached = w.cache.get(sid)
    out = cached.memo(("parallel", goal, limit), lambda: data.parallel(cached.trials(), goal, limit))
    return jsonify({**out, "metric_name": metric or None})


@bp.get("/sweeps/<sid>/importance")
def get_importance(sid: str) -> Response:
    """Random-forest importance and correlation of each parameter with the metric."""
    w = current()
    metric, _goal = w.store.sweep_metric(sid)
    out = dict(w.importance.get(sid, w.cache.get(sid).trials()))
    out["metric_name"] = metric or None
    return jsonify(out)


@bp.get("/sweeps/<sid>/pareto")
def get_pareto(sid: str) -> Response:
    """A multi-objective sweep's finished runs with every objective's value, and its Pareto
    front: ``{"objectives", "points": [{"id", "values", "front", "state"}], "front": [ids], "total",
    "incomplete"}`` (:func:`sweepq.web.data.pareto_points`; at most ``?limit=`` points, default
    5000, front points always kept). A sweep of one metric answers 200 with empty lists."""
    limit = _int_arg("limit", 5000, lo=1, hi=MAX_PARETO_POINTS) or 5000
    cached = current().cache.get(sid)
    objs = cached.objectives()
    out = cached.memo(("pareto", limit), lambda: data.pareto_points(cached.trials(), objs, limit))
    return jsonify(out)


@bp.get("/sweeps/<sid>/best")
def get_best(sid: str) -> Response:
    """The ``best`` shape; 404 while no finished run has the metric (``sweepq best`` exits 3).
    For a multi-objective sweep ``{"pareto": [run, ...]}``, the runs on its Pareto front best
    first on the first objective (as ``sweepq best --json``); 404 while no finished run has every
    objective."""
    w = current()
    store = w.store
    if not store.sweep_exists(sid):
        raise NotFound(f"unknown sweep {sid!r}")
    if w.cache.objective_names(sid):
        front = data.pareto_runs(w.cache.get(sid))
        if not front:
            return error(404, f"sweep {sid} has no finished trial with every objective yet")
        return jsonify({"pareto": front})
    b = store.best(sid)
    if b is None:
        return error(404, f"sweep {sid} has no finished trial with a metric yet")
    return jsonify(b)


@bp.get("/workers")
def list_workers() -> Response:
    """Workers with a fresh heartbeat (name, slots, queues, host, gpus, sweep for agents)."""
    return jsonify(current().store.alive_workers())


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI description of this API (:mod:`sweepq.web.openapi`)."""
    from sweepq.web.openapi import openapi_spec

    return jsonify(openapi_spec())


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def _unknown(_rest: str) -> Response:
    return error(404, f"no such API endpoint: {request.path}")
