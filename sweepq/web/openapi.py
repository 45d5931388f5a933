"""The OpenAPI 3.0 description of the HTTP API (served at ``/api/openapi.json``): the paths of
:mod:`sweepq.web.api` and ``/healthz``/``/metrics``, the JSON shapes of docs/dashboard.md, and the
error answers every route may give."""

from __future__ import annotations

from typing import Any

from sweepq.ids import RUN_ID_RE, SWEEP_ID_RE
from sweepq.model import SWEEP_STATES, TRIAL_STATES
from sweepq.web.api import ACTIONS, MAX_LIMIT, MAX_PARETO_POINTS
from sweepq.web.data import OBJECTIVE_SORT, SORT_KEYS


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
    sid = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{SWEEP_ID_RE.pattern}$"},
    }
    nullable_num = {"type": "number", "nullable": True}
    goal = {"type": "string", "enum": ["minimize", "maximize"]}
    objective = {
        "type": "object",
        "required": ["name", "goal"],
        "properties": {"name": {"type": "string"}, "goal": goal},
    }
    counts = {"type": "object", "properties": {s: {"type": "integer"} for s in TRIAL_STATES}}
    schemas = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "string"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Best": {
            "type": "object",
            "nullable": True,
            "required": ["run_id", "value", "params"],
            "properties": {
                "run_id": {"type": "string"},
                "value": {"type": "number"},
                "params": {"type": "object"},
            },
        },
        "Status": {
            "type": "object",
            "required": ["id", "state", "method", "metric", "counts", "best"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": list(SWEEP_STATES)},
                "method": {"type": "string"},
                "metric": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "nullable": True}, "goal": {"type": "string"}},
                },
                "counts": counts,
                "best": ref("Best"),
                "name": {"type": "string"},
                "created_at": nullable_num,
                "ended_at": nullable_num,
                "trials": {"type": "integer"},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "end_reason": {"type": "string"},
                "objectives": {
                    "type": "array",
                    "items": ref("Objective"),
                    "description": "multi-objective sweeps only: the objectives in order "
                    "(metric is the first)",
                },
                "pareto_size": {
                    "type": "integer",
                    "description": "multi-objective sweeps only: runs on the Pareto front",
                },
            },
        },
        "Objective": objective,
        "Run": {
            "type": "object",
            "required": [
                "id",
                "state",
                "params",
                "metric",
                "steps",
                "started_at",
                "ended_at",
                "worker",
                "exit_code",
            ],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": list(TRIAL_STATES)},
                "params": {"type": "object"},
                "metric": nullable_num,
                "steps": {"type": "integer"},
                "started_at": nullable_num,
                "ended_at": nullable_num,
                "worker": {"type": "string", "nullable": True},
                "exit_code": {"type": "integer", "nullable": True},
                "attempt": {"type": "integer"},
                "reason": {"type": "string"},
                "gpus": {"type": "string"},
                "objectives": {
                    "type": "object",
                    "additionalProperties": nullable_num,
                    "description": "multi-objective sweeps only: each objective's summary value "
                    "by name (null: not logged); metric is the first objective's",
                },
            },
        },
        "Pareto": {
            "type": "object",
            "required": ["pareto"],
            "properties": {
                "pareto": {
                    "type": "array",
                    "items": ref("Run"),
                    "description": "the runs on the Pareto front, best first on the first objective",
                }
            },
        },
        "ParetoPoints": {
            "type": "object",
            "required": ["objectives", "points", "front"],
            "properties": {
                "objectives": {"type": "array", "items": ref("Objective")},
                "points": {
                    "type": "array",
                    "description": "finished runs with every objective's value, in creation order",
                    "items": {
                        "type": "object",
                        "required": ["id", "values", "front", "state"],
                        "properties": {
                            "id": {"type": "string"},
                            "values": {"type": "array", "items": {"type": "number"}},
                            "front": {"type": "boolean"},
                            "state": {"type": "string", "enum": list(TRIAL_STATES)},
                        },
                    },
                },
                "front": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "ids on the Pareto front, best first on the first objective",
                },
                "total": {"type": "integer", "description": "finished runs with every value"},
                "incomplete": {"type": "integer", "description": "finished runs lacking a value"},
            },
        },
        "RunDetail": {
            "allOf": [
                ref("Run"),
                {
                    "type": "object",
                    "properties": {
                        "log_tail": {"type": "string"},
                        "history": {"type": "array", "items": {"type": "number"}},
                        "rows": {"type": "array", "items": {"type": "object"}},
                        "keys": {"type": "array", "items": {"type": "string"}},
                    },
                },
            ]
        },
    }
    body = {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "Liveness and Redis reachability",
                "security": [],
                "responses": {"200": ok({"type": "object"}), "503": ok({"type": "object"}, "Redis down")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}},
            }
        },
        "/api/sweeps": {
            "get": {
                "summary": "All sweeps (sweepq list --json)",
                "responses": {"200": ok({"type": "array", "items": ref("Status")}), "401": err},
            },
            "post": {
                "summary": "Create a sweep from a YAML or JSON config",
                "requestBody": body,
                "responses": {
                    "201": ok(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "warnings": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                    "400": err,
                    "401": err,
                },
            },
        },
        "/api/validate": {
            "post": {
                "summary": "Validate a config without creating a sweep",
                "requestBody": body,
                "responses": {"200": ok({"type": "object"}), "401": err},
            }
        },
        "/api/sweeps/{id}": {
            "get": {
                "summary": "A sweep's status (sweepq status --json)",
                "parameters": [sid],
                "responses": {"200": ok(ref("Status")), "404": err, "401": err},
            }
        },
        "/api/sweeps/{id}/config": {
            "get": {
                "summary": "The normalised config",
                "parameters": [sid],
                "responses": {"200": ok({"type": "object"}), "404": err},
            }
        },
        "/api/sweeps/{id}/best": {
            "get": {
                "summary": "The best finished run; the Pareto front of a multi-objective sweep",
                "parameters": [sid],
                "responses": {"200": ok({"oneOf": [ref("Best"), ref("Pareto")]}), "404": err},
            }
        },
        "/api/sweeps/{id}/pareto": {
            "get": {
                "summary": "A multi-objective sweep's points and Pareto front (empty for one metric)",
                "parameters": [
                    sid,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PARETO_POINTS},
                        "description": "most points (default 5000); front points are always kept",
                    },
                ],
                "responses": {"200": ok(ref("ParetoPoints")), "400": err, "404": err},
            }
        },
        "/api/sweeps/{id}/runs": {
            "get": {
                "summary": "Runs (sweepq runs --json); paged, filtered and sorted on the server",
                "parameters": [
                    sid,
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "comma-separated trial states",
                    },
                    {
                        "name": "sort",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "[-]" + "|".join(SORT_KEYS) + f"|{OBJECTIVE_SORT}<name>",
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                    },
                ],
                "responses": {
                    "200": ok(
                        {"type": "array", "items": ref("Run")},
                        headers={
                            "X-Total-Count": {
                                "schema": {"type": "integer"},
                                "description": "runs matching the filter",
                            },
                            "X-Total-Unfiltered": {"schema": {"type": "integer"}},
                        },
                    ),
                    "400": err,
                    "404": err,
                },
            }
        },
        "/api/sweeps/{id}/runs/{run_id}": {
            "get": {
                "summary": "One run with its log tail and logged metric rows",
                "parameters": [
                    sid,
                    {
                        "name": "run_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^{RUN_ID_RE.pattern}$"},
                    },
                    {"name": "rows", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": ok(ref("RunDetail")), "404": err},
            }
        },
        "/api/sweeps/{id}/curves": {
            "get": {
                "summary": "Metric-versus-step series",
                "parameters": [
                    sid,
                    {"name": "runs", "in": "query", "schema": {"type": "string"}},
                    {"name": "key", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": ok({"type": "object"}), "404": err},
            }
        },
        "/api/sweeps/{id}/parallel": {
            "get": {
                "summary": "Parallel-coordinates data",
                "parameters": [sid],
                "responses": {"200": ok({"type": "object"}), "404": err},
            }
        },
        "/api/sweeps/{id}/importance": {
            "get": {
                "summary": "Random-forest parameter importance",
                "parameters": [sid],
                "responses": {"200": ok({"type": "object"}), "404": err},
            }
        },
        "/api/workers": {"get": {"summary": "Live workers", "responses": {"200": ok({"type": "array"})}}},
    }
    for action in ACTIONS:
        paths[f"/api/sweeps/{{id}}/{action}"] = {
            "post": {
                "summary": f"{action.capitalize()} the sweep",
                "parameters": [sid],
                "responses": {
                    "200": ok(
                        {
                            "type": "object",
                            "properties": {"id": {"type": "string"}, "state": {"type": "string"}},
                        }
                    ),
                    "404": err,
                    "409": err,
                    "401": err,
                },
            }
        }
    for path, ops in paths.items():
        for op in ops.values():
            if "{id}" in path:
                op["responses"].setdefault("400", ok(ref("Error"), "Not a sweep id or run id"))
            op["responses"].setdefault("503", ok(ref("Error"), "The store (Redis) cannot serve"))
            op["responses"].setdefault("500", ok(ref("Error"), "Internal error (one JSON line)"))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "sweepq API",
            "version": "1",
            "description": "Self-hosted, W&B-Sweeps-compatible hyperparameter sweeps. JSON shapes as "
            "`sweepq ... --json` (docs/dashboard.md, JSON shapes).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Required when SWEEPQ_API_TOKEN is set",
                }
            },
            "schemas": schemas,
        },
        "paths": paths,
    }
