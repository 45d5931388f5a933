"""The HTTP API (docs/dashboard.md): the same JSON shapes as ``sweepq ... --json``.

Answers are JSON; errors are ``{"error": "..."}`` (plus ``"errors": [...]`` for invalid configs)
with 400 (bad input, including an id sweepq could not have made), 401 (token), 404 (unknown
sweep or run), 409 (an action the sweep's state forbids, e.g. pausing a finished sweep), 503 (the
store cannot serve: Redis out of memory, read-only or unreachable) and 500 for anything else:
always one JSON line, never an HTML page or a traceback (those go to the server log). ``GET /api/sweeps/<id>/runs`` without query parameters
is the plain list of ``sweepq runs --json``; with ``offset``/``limit``/``state``/``sort`` the
server pages, filters and sorts (totals in the ``X-Total-Count`` header), so the dashboard stays
fast on sweeps with 10,000+ trials.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from sweepq.config import MAX_DEPTH, nesting_depth
from sweepq.ids import RUN_ID_RE, SWEEP_ID_RE, is_run_id, is_sweep_id, shown
from sweepq.store import NotFound, Store, StoreError, StoreUnavailable
from sweepq.web import data

bp = Blueprint("api", __name__, url_prefix="/api")

ACTIONS = ("pause", "resume", "stop", "cancel")
MAX_LIMIT = 5000
MAX_CURVE_RUNS = 50


def web() -> Any:
    """The app's :class:`sweepq.web.WebState` (store, caches, settings)."""
    return current_app.extensions["sweepq"]


def error(status: int, message: str, **extra: Any) -> Response:
    resp = jsonify({"error": message, **extra})
    resp.status_code = status
    return resp


def token_ok(token: str | None) -> bool:
    """True when no token is configured or the request carries it (constant-time compare)."""
    if not token:
        return True
    auth = request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def cross_site_write() -> bool:
    """A state-changing request a browser sent from another site's page (CSRF): the browser
    names the page's origin, and it is not this server. Without a token, a page on any site
    could otherwise create a sweep (which runs a command on the workers) on a local sweepq.
    curl and scripts send no Origin and are not affected."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if not origin:
        return False
    from urllib.parse import urlparse

    return origin == "null" or urlparse(origin).netloc.lower() != (request.host or "").lower()


@bp.before_request
def _auth() -> Response | None:
    if cross_site_write():
        return error(403, "cross-site request refused (the Origin is not this server)")
    if not token_ok(web().settings.get("api_token")):
        resp = error(401, "missing or wrong API token (send Authorization: Bearer <SWEEPQ_API_TOKEN>)")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="sweepq"'
        return resp
    return None


@bp.before_request
def _check_ids() -> Response | None:
    """Ids in the path are checked before any view runs, so none reaches a Redis key name
    unless sweepq could have made it."""
    args = request.view_args or {}
    if "sid" in args and not is_sweep_id(args["sid"]):
        return error(400, f"not a sweep id: {shown(args['sid'])} (sweep ids are 1-64 lowercase letters and digits)")
    if "run_id" in args and not is_run_id(args["run_id"]):
        return error(400, f"not a run id: {shown(args['run_id'])} (run ids are <sweep id>-<number>)")
    return None


def _int_arg(name: str, default: int | None, lo: int = 0, hi: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"{name}: must be an integer (got {raw!r})") from None
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name}: must be between {lo} and {hi}" if hi is not None else f"{name}: must be >= {lo}")
    return v


def _metric(sid: str) -> tuple[str, str]:
    """(metric name, goal) of a sweep in one round trip (the plots need no full status)."""
    return web().store.sweep_metric(sid)


def _need(sid: str) -> None:
    if not web().store.sweep_exists(sid):
        raise NotFound(f"unknown sweep {sid!r}")


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return error(404, str(exc))


@bp.errorhandler(ValueError)
def _bad(exc: ValueError) -> Response:
    return error(400, str(exc))


@bp.errorhandler(StoreError)
def _conflict(exc: StoreError) -> Response:
    return error(409, str(exc))


# App-wide (the dashboard's and /metrics' errors too): every exception becomes one JSON line.
@bp.app_errorhandler(RedisError)
@bp.app_errorhandler(StoreUnavailable)
def _store_unavailable(exc: Exception) -> Response:
    """Redis out of memory, read-only or unreachable: the service, not the request, is at fault."""
    current_app.logger.warning("store error on %s %s: %s", request.method, request.path, exc)
    named = web().store.unavailable(exc)
    if named is not None:
        return error(named.http_status, str(named))
    return error(503, f"the store (Redis) cannot serve this request: {' '.join(str(exc).split())[:200]}")


@bp.app_errorhandler(Exception)
def _any_error(exc: Exception) -> Response | HTTPException:
    """HTTP errors keep their status (as JSON under /api); anything else is a bug: logged with
    its traceback on the server, answered as a JSON 500 without one."""
    if isinstance(exc, HTTPException):
        if request.path.startswith("/api/"):
            return error(exc.code or 500, exc.description or exc.name)
        return exc
    current_app.logger.error("error on %s %s", request.method, request.path, exc_info=exc)
    return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


# -- sweeps -------------------------------------------------------------------------------------
@bp.get("/sweeps")
def list_sweeps() -> Response:
    """Every sweep's status (``sweepq list --json``), newest last as the CLI lists them."""
    store: Store = web().store
    out = []
    for sid in store.list_sweeps():
        try:
            out.append(store.status(sid))
        except NotFound:  # deleted between the two reads
            continue
    return jsonify(out)


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


@bp.post("/sweeps")
def create_sweep() -> tuple[Response, int] | Response:
    """Validate and register a sweep: 201 ``{"id"}`` or 400 ``{"errors": [...]}``."""
    from sweepq.config import validate

    source, errors = _read_config_body()
    warnings: list[str] = []
    config = None
    if not errors:
        config, errors, warnings = validate(source)
    if config is None:
        return error(400, "invalid sweep config", errors=errors, warnings=warnings)
    sid = web().store.create_sweep(config)
    if warnings:
        web().store.set_sweep_fields(sid, warnings=warnings)
    resp = jsonify({"id": sid, "warnings": warnings})
    resp.headers["Location"] = f"/api/sweeps/{sid}"
    return resp, 201


@bp.post("/validate")
def validate_config() -> Response:
    """Check a config without creating a sweep (the dashboard's live validation):
    ``{"ok", "errors", "warnings", "config"}``, always 200."""
    from sweepq.config import validate

    source, errors = _read_config_body()
    warnings: list[str] = []
    config = None
    if not errors:
        config, errors, warnings = validate(source)
    return jsonify({"ok": config is not None, "errors": errors, "warnings": warnings, "config": config})


@bp.get("/sweeps/<sid>")
def get_sweep(sid: str) -> Response:
    """The ``status`` shape (``sweepq status --json``)."""
    return jsonify(web().store.status(sid))


@bp.get("/sweeps/<sid>/config")
def get_config(sid: str) -> Response:
    """The normalised config the sweep runs with."""
    cfg = web().store.sweep_config(sid)
    # sweeps stored by earlier versions carry the old "_normalised" marker: not part of the config
    return jsonify({k: v for k, v in cfg.items() if k != "_normalised"})


@bp.post("/sweeps/<sid>/<action>")
def sweep_action(sid: str, action: str) -> Response:
    """pause | resume | stop | cancel: ``{"id", "state"}``; 409 when the state forbids it."""
    if action not in ACTIONS:
        return error(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    state = web().store.sweep_action(sid, action)
    return jsonify({"id": sid, "state": state})


# -- runs ---------------------------------------------------------------------------------------
@bp.get("/sweeps/<sid>/runs")
def list_runs(sid: str) -> Response:
    """Runs in the ``run`` shape. Query: ``state=a,b``, ``sort=[-]field``, ``offset``, ``limit``."""
    w = web()
    st = w.cache.get(sid)
    states = data.parse_states(request.args.get("state"))
    sort = request.args.get("sort") or ""
    if sort:
        data.check_sort(sort)

    def view() -> tuple[int, list[dict[str, Any]]]:
        trials = st.trials()
        total_all = len(trials)
        if states is not None:
            trials = [t for t in trials if t["state"] in states]
        if sort:
            trials = data.sort_runs(trials, sort)
        return total_all, trials

    total_all, trials = st.memo(("runs", frozenset(states) if states else None, sort), view)
    offset = _int_arg("offset", 0) or 0
    limit = _int_arg("limit", None, lo=0, hi=MAX_LIMIT)
    total = len(trials)
    page = trials[offset:offset + limit] if limit is not None else trials[offset:]
    resp = jsonify([Store.run_json(t) for t in page])
    resp.headers["X-Total-Count"] = str(total)
    resp.headers["X-Total-Unfiltered"] = str(total_all)
    resp.headers["X-Offset"] = str(offset)
    return resp


@bp.get("/sweeps/<sid>/runs/<run_id>")
def get_run(sid: str, run_id: str) -> Response:
    """One run: the ``run`` shape plus ``log_tail``, ``reason``, ``history`` (values of the
    sweep metric in order) and ``rows`` (the last logged metric rows, for curves)."""
    store: Store = web().store
    _need(sid)
    try:
        t = store.get_trial(run_id, history=True)
    except NotFound:
        raise NotFound(f"unknown run {run_id!r} in sweep {sid!r}") from None
    if t["sweep"] != sid:
        raise NotFound(f"unknown run {run_id!r} in sweep {sid!r}")
    rows_limit = _int_arg("rows", 1000, lo=0, hi=5000) or 0
    out = Store.run_json(t)
    out.update({"log_tail": t["log_tail"], "reason": t["reason"], "history": t["history"],
                "queued_at": t["queued_at"], "queue": t["queue"], "stop": t["stop"],
                "rows": store.trial_rows(run_id, limit=rows_limit) if rows_limit else [],
                "keys": data.row_keys(store, run_id)})
    return jsonify(out)


@bp.get("/sweeps/<sid>/curves")
def get_curves(sid: str) -> Response:
    """``?runs=id1,id2&key=loss``: metric-versus-step series of chosen runs (default key: the
    sweep's metric; default runs: the 5 best)."""
    w = web()
    metric, goal = _metric(sid)
    key = request.args.get("key") or metric
    ids = [x for x in (request.args.get("runs") or "").split(",") if x][:MAX_CURVE_RUNS]
    cached = w.cache.get(sid)
    if not ids:
        ids = cached.memo(("best5", goal), lambda: data.best_ids(cached.trials(), goal, 5))
    else:
        known = cached.by_id
        ids = [i for i in ids if i in known]
    return jsonify({"key": key, "runs": data.curves(w.store, ids, key) if key else []})


@bp.get("/sweeps/<sid>/parallel")
def get_parallel(sid: str) -> Response:
    """Parallel-coordinates data of the best ``limit`` (default 2000) scored runs."""
    w = web()
    metric, goal = _metric(sid)
    limit = _int_arg("limit", 2000, lo=1, hi=20000) or 2000
    cached = w.cache.get(sid)
    out = cached.memo(("parallel", goal, limit), lambda: data.parallel(cached.trials(), goal, limit))
    return jsonify({**out, "metric_name": metric or None})


@bp.get("/sweeps/<sid>/importance")
def get_importance(sid: str) -> Response:
    """Random-forest importance and correlation of each parameter with the metric."""
    w = web()
    metric, _goal = _metric(sid)
    out = dict(w.importance.get(sid, w.cache.get(sid).trials()))
    out["metric_name"] = metric or None
    return jsonify(out)


@bp.get("/sweeps/<sid>/best")
def get_best(sid: str) -> Response:
    """The ``best`` shape; 404 while no finished run has the metric (``sweepq best`` exits 3)."""
    _need(sid)
    b = web().store.best(sid)
    if b is None:
        return error(404, f"sweep {sid} has no finished trial with a metric yet")
    return jsonify(b)


@bp.get("/workers")
def list_workers() -> Response:
    """Workers with a fresh heartbeat (name, slots, queues, host, gpus, sweep for agents)."""
    return jsonify(web().store.alive_workers())


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_spec())


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def _unknown(_rest: str) -> Response:
    return error(404, f"no such API endpoint: {request.path}")


# -- OpenAPI ------------------------------------------------------------------------------------
def openapi_spec() -> dict[str, Any]:
    """OpenAPI 3.0 description of the API (served at ``/api/openapi.json``)."""

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def ok(schema: dict[str, Any], desc: str = "OK", headers: dict[str, Any] | None = None) -> dict[str, Any]:
        r: dict[str, Any] = {"description": desc, "content": {"application/json": {"schema": schema}}}
        if headers:
            r["headers"] = headers
        return r

    err = ok(ref("Error"), "Error")
    sid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{SWEEP_ID_RE.pattern}$"}}
    nullable_num = {"type": "number", "nullable": True}
    counts = {"type": "object", "properties": {s: {"type": "integer"} for s in
                                               ("queued", "running", "finished", "failed", "crashed",
                                                "stopped", "canceled")}}
    schemas = {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "errors": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}}}},
        "Best": {"type": "object", "nullable": True, "required": ["run_id", "value", "params"], "properties": {
            "run_id": {"type": "string"}, "value": {"type": "number"}, "params": {"type": "object"}}},
        "Status": {"type": "object", "required": ["id", "state", "method", "metric", "counts", "best"],
                   "properties": {
                       "id": {"type": "string"},
                       "state": {"type": "string", "enum": ["running", "paused", "stopped", "canceled", "finished", "failed"]},
                       "method": {"type": "string"},
                       "metric": {"type": "object", "properties": {
                           "name": {"type": "string", "nullable": True}, "goal": {"type": "string"}}},
                       "counts": counts, "best": ref("Best"),
                       "name": {"type": "string"}, "created_at": nullable_num, "ended_at": nullable_num,
                       "trials": {"type": "integer"}, "warnings": {"type": "array", "items": {"type": "string"}},
                       "end_reason": {"type": "string"}}},
        "Run": {"type": "object", "required": ["id", "state", "params", "metric", "steps", "started_at",
                                               "ended_at", "worker", "exit_code"], "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["queued", "running", "finished", "failed", "crashed",
                                                 "stopped", "canceled"]},
            "params": {"type": "object"}, "metric": nullable_num, "steps": {"type": "integer"},
            "started_at": nullable_num, "ended_at": nullable_num,
            "worker": {"type": "string", "nullable": True}, "exit_code": {"type": "integer", "nullable": True},
            "attempt": {"type": "integer"}, "reason": {"type": "string"}, "gpus": {"type": "string"}}},
        "RunDetail": {"allOf": [ref("Run"), {"type": "object", "properties": {
            "log_tail": {"type": "string"}, "history": {"type": "array", "items": {"type": "number"}},
            "rows": {"type": "array", "items": {"type": "object"}},
            "keys": {"type": "array", "items": {"type": "string"}}}}]},
    }
    body = {"required": True, "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}}}}
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness and Redis reachability", "security": [],
                             "responses": {"200": ok({"type": "object"}), "503": ok({"type": "object"}, "Redis down")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format)",
                             "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        "/api/sweeps": {
            "get": {"summary": "All sweeps (sweepq list --json)",
                    "responses": {"200": ok({"type": "array", "items": ref("Status")}), "401": err}},
            "post": {"summary": "Create a sweep from a YAML or JSON config", "requestBody": body,
                     "responses": {"201": ok({"type": "object", "properties": {
                         "id": {"type": "string"}, "warnings": {"type": "array", "items": {"type": "string"}}}}),
                         "400": err, "401": err}}},
        "/api/validate": {"post": {"summary": "Validate a config without creating a sweep", "requestBody": body,
                                   "responses": {"200": ok({"type": "object"}), "401": err}}},
        "/api/sweeps/{id}": {"get": {"summary": "A sweep's status (sweepq status --json)", "parameters": [sid],
                                     "responses": {"200": ok(ref("Status")), "404": err, "401": err}}},
        "/api/sweeps/{id}/config": {"get": {"summary": "The normalised config", "parameters": [sid],
                                            "responses": {"200": ok({"type": "object"}), "404": err}}},
        "/api/sweeps/{id}/best": {"get": {"summary": "The best finished run", "parameters": [sid],
                                          "responses": {"200": ok(ref("Best")), "404": err}}},
        "/api/sweeps/{id}/runs": {"get": {
            "summary": "Runs (sweepq runs --json); paged, filtered and sorted on the server",
            "parameters": [sid,
                           {"name": "state", "in": "query", "schema": {"type": "string"},
                            "description": "comma-separated trial states"},
                           {"name": "sort", "in": "query", "schema": {"type": "string"},
                            "description": "[-]id|state|metric|steps|started_at|ended_at|duration|worker|exit_code"},
                           {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                       "maximum": MAX_LIMIT}}],
            "responses": {"200": ok({"type": "array", "items": ref("Run")}, headers={
                "X-Total-Count": {"schema": {"type": "integer"}, "description": "runs matching the filter"},
                "X-Total-Unfiltered": {"schema": {"type": "integer"}}}), "400": err, "404": err}}},
        "/api/sweeps/{id}/runs/{run_id}": {"get": {
            "summary": "One run with its log tail and logged metric rows",
            "parameters": [sid, {"name": "run_id", "in": "path", "required": True,
                                 "schema": {"type": "string", "pattern": f"^{RUN_ID_RE.pattern}$"}},
                           {"name": "rows", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": ok(ref("RunDetail")), "404": err}}},
        "/api/sweeps/{id}/curves": {"get": {
            "summary": "Metric-versus-step series", "parameters": [
                sid, {"name": "runs", "in": "query", "schema": {"type": "string"}},
                {"name": "key", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": ok({"type": "object"}), "404": err}}},
        "/api/sweeps/{id}/parallel": {"get": {"summary": "Parallel-coordinates data", "parameters": [sid],
                                              "responses": {"200": ok({"type": "object"}), "404": err}}},
        "/api/sweeps/{id}/importance": {"get": {"summary": "Random-forest parameter importance",
                                                "parameters": [sid],
                                                "responses": {"200": ok({"type": "object"}), "404": err}}},
        "/api/workers": {"get": {"summary": "Live workers", "responses": {"200": ok({"type": "array"})}}},
    }
    for action in ACTIONS:
        paths[f"/api/sweeps/{{id}}/{action}"] = {"post": {
            "summary": f"{action.capitalize()} the sweep", "parameters": [sid],
            "responses": {"200": ok({"type": "object", "properties": {
                "id": {"type": "string"}, "state": {"type": "string"}}}), "404": err, "409": err, "401": err}}}
    for path, ops in paths.items():
        for op in ops.values():
            if "{id}" in path:
                op["responses"].setdefault("400", ok(ref("Error"), "Not a sweep id or run id"))
            op["responses"].setdefault("503", ok(ref("Error"), "The store (Redis) cannot serve"))
            op["responses"].setdefault("500", ok(ref("Error"), "Internal error (one JSON line)"))
    return {
        "openapi": "3.0.3",
        "info": {"title": "sweepq API", "version": "1",
                 "description": "Self-hosted, W&B-Sweeps-compatible hyperparameter sweeps. JSON shapes as "
                                "`sweepq ... --json` (docs/dashboard.md, JSON shapes)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "Required when SWEEPQ_API_TOKEN is set"}},
                       "schemas": schemas},
        "paths": paths,
    }
