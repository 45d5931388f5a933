"""How the web app answers a failure: always one JSON line ``{"error": "..."}`` (plus extra keys
such as ``"errors"`` where a route adds them), never an HTML page or a traceback under ``/api``.

Statuses: sweepq's own errors carry theirs (:mod:`sweepq.errors`: 400 bad input, 404 unknown
sweep or run, 409 a state that forbids the action, 503 the store cannot serve); a ``ValueError``
from the API is bad input (400); a Redis error anywhere is the store's outage (503, its cause
named when the store can name it); an HTTP error keeps its status (as JSON under ``/api``);
anything else is a bug of sweepq's: logged with its traceback on the server, answered 500 without
one. The token, host and CSRF refusals (401, 421, 403) and the body cap (413) are
:mod:`sweepq.web.security`'s.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from sweepq.errors import SweepqError, Unavailable
from sweepq.web.state import current


def error(status: int, message: str, **extra: Any) -> Response:
    """The JSON answer ``{"error": message, **extra}`` with ``status``."""
    resp = jsonify({"error": message, **extra})
    resp.status_code = status
    return resp


def known_error(exc: Exception) -> Response:
    """The answer to an error whose meaning is known: a :class:`~sweepq.errors.SweepqError` with
    its ``http_status``, a ``ValueError`` as 400, and a store outage (an
    :class:`~sweepq.errors.Unavailable` or a Redis error) as the store names it, else 503;
    outages are logged, since the service, not the request, is at fault."""
    if isinstance(exc, SweepqError) and not isinstance(exc, Unavailable):
        return error(exc.http_status, str(exc))
    if isinstance(exc, ValueError):
        return error(400, str(exc))
    current_app.logger.warning("store error on %s %s: %s", request.method, request.path, exc)
    named = current().store.unavailable(exc)
    if named is not None:
        return error(named.http_status, str(named))
    return error(503, f"the store (Redis) cannot serve this request: {' '.join(str(exc).split())[:200]}")


def _any_error(exc: Exception) -> Response | HTTPException:
    """HTTP errors keep their status (as JSON under /api); anything else is logged with its
    traceback and answered as a JSON 500 without one."""
    if isinstance(exc, HTTPException):
        if request.path.startswith("/api/"):
            return error(exc.code or 500, exc.description or exc.name)
        return exc
    current_app.logger.error("error on %s %s", request.method, request.path, exc_info=exc)
    return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _not_found(exc: HTTPException) -> Response | HTTPException:
    if request.path.startswith("/api/"):
        return error(404, f"no such API endpoint: {request.path}")
    return exc


def _not_allowed(exc: HTTPException) -> Response | HTTPException:
    if request.path.startswith("/api/"):
        return error(405, f"method {request.method} not allowed on {request.path}")
    return exc


def install(app: Flask) -> None:
    """The app-wide answers: store outages on every route (the API's own errors are answered by
    :func:`known_error` on its blueprint), unknown paths and methods as JSON under ``/api``, and
    every other exception as one JSON line."""
    app.register_error_handler(RedisError, known_error)
    app.register_error_handler(Unavailable, known_error)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _not_allowed)
    app.register_error_handler(Exception, _any_error)
