"""Read models for the web layer, built on :class:`sweepq.store.Store`.

Why a cache: the sweep page polls every ~2 s and sorts/filters/pages the runs of sweeps with
10,000+ trials. Re-reading every trial hash on each poll costs ~100 ms of Redis round trips and
JSON decoding per request; instead each web process keeps the trial records of the sweeps it
shows and refreshes them *incrementally* from the events stream that every trial state change and
metric write already appends to (atomically, inside the store's Lua scripts). A refresh reads the
events since the last one it saw and re-fetches only the trials they name, so the data is never
staler than one refresh and a finished sweep costs one ``XREAD`` per request. When the stream was
trimmed past the last seen event (more than ~20,000 changes between two requests) the sweep is
reloaded in full.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections import OrderedDict
from operator import itemgetter
from typing import Any

from sweepq import pareto
from sweepq.errors import NotFound
from sweepq.model import IN_FLIGHT, TRIAL_STATES, finite_number, stored_number
from sweepq.store import Store
from sweepq.store.limits import READ_CHUNK

# Fields a client may sort runs by (``?sort=metric`` or ``?sort=-metric``).
SORT_KEYS = ("id", "state", "metric", "steps", "started_at", "ended_at", "duration", "worker", "exit_code")
# ``?sort=objectives.<name>``: a multi-objective sweep's runs by one objective's value
OBJECTIVE_SORT = "objectives."


def _event_id(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


def dotted(values: Any, prefix: str = "") -> dict[str, Any]:
    """A trial's parameter values with nested groups as dotted names (``{"opt": {"lr": 1}}`` ->
    ``{"opt.lr": 1}``), in the trial's own key order: the names the runs table and the plots
    show. A value that is not a mapping is named ``prefix`` (``"value"`` at the top).

    :func:`sweepq.params.flatten` is the config's view (the specs of ``parameters``, keyed by
    path tuples, sorted); this is a trial's, and takes whatever values the record holds."""
    out: dict[str, Any] = {}
    if not isinstance(values, dict):
        return {prefix or "value": values}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(dotted(v, key))
        else:
            out[key] = v
    return out


def row_number(v: Any) -> float | None:
    """A logged row's value as a number to plot, else None: a finite number
    (:func:`sweepq.model.finite_number`: not a bool), or text that reads as one (``"0.5"``: the
    rows keep values as logged)."""
    if v is None:
        return None
    if isinstance(v, str):
        v = stored_number(v)
    return finite_number(v)


class SweepTrials:
    """The cached trial records of one sweep (see the module docstring)."""

    def __init__(self, store: Store, sid: str) -> None:
        self.store = store
        self.sid = sid
        self.by_id: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.last_event = ""
        self.refreshed_at = 0.0
        self.version = 0  # bumped whenever a record changes (derived caches key on it)
        self.lock = threading.Lock()
        self._memo: dict[Any, Any] = {}
        self._memo_version = -1
        self._objectives: list[dict[str, str]] | None = None

    def objectives(self) -> list[dict[str, str]]:
        """The sweep's objectives (``[{name, goal}, ...]``; ``[]`` for one metric), read once: a
        sweep's config never changes (a full reload, as after a namespace wipe, reads it again)."""
        objs = self._objectives
        if objs is None:
            objs = self._objectives = self.store.sweep_objectives(self.sid)
        return objs

    def objective_names(self) -> list[str]:
        """The names of :meth:`objectives` in order (``[]`` for one metric)."""
        return [o["name"] for o in self.objectives()]

    # -- loading ----------------------------------------------------------------------------------
    def _store_records(self, recs: list[tuple[str, dict[str, Any]]]) -> None:
        for tid, rec in recs:
            if tid not in self.by_id:
                self.order.append(tid)
            self.by_id[tid] = rec

    def _fetch(self, tids: list[str]) -> None:
        for i in range(0, len(tids), READ_CHUNK):
            self._store_records(self.store.read_trial_records(self.sid, tids=tids[i : i + READ_CHUNK]))
        if tids:
            self.version += 1

    def _fetch_from_rank(self, start: int) -> None:
        """Every trial from rank ``start`` of the sweep's ZSET on, in creation order."""
        n = self.store.n_trials(self.sid)
        for i in range(start, n, READ_CHUNK):
            self._store_records(
                self.store.read_trial_records(self.sid, ranks=(i, min(i + READ_CHUNK, n) - 1))
            )
        self.version += 1

    def memo(self, key: Any, compute: Any) -> Any:
        """A value derived from the records (a sorted view, plot data), recomputed only after
        the records changed: polls of a quiet sweep cost no sorting."""
        with self.lock:
            if self._memo_version != self.version:
                self._memo, self._memo_version = {}, self.version
            if key in self._memo:
                return self._memo[key]
            version = self.version
        value = compute()
        with self.lock:
            if self.version == version:
                self._memo[key] = value
        return value

    def _full_load(self) -> None:
        self._objectives = None
        self.last_event = self.store.last_event_id()  # before the reads: nothing is missed
        self.by_id, self.order = {}, []
        self._fetch_from_rank(0)

    def refresh(self, min_interval: float = 0.2) -> None:
        """Bring the records up to date (at most one Redis refresh per ``min_interval``)."""
        with self.lock:
            now = time.monotonic()
            if self.last_event and now - self.refreshed_at < min_interval:
                return
            if not self.last_event:
                self._full_load()
            else:
                self._incremental()
            self.refreshed_at = time.monotonic()

    def _incremental(self) -> None:
        oldest, entries, n, exists = self.store.sweep_changes(self.sid, self.last_event)
        if not exists:  # deleted (namespace wiped) since it was cached
            raise NotFound(f"unknown sweep {self.sid!r}")
        if oldest and _event_id(oldest[0][0]) > _event_id(self.last_event) and self.last_event != "0-0":
            # the stream was trimmed past what we saw: some changes may be lost
            self._full_load()
            return
        dirty: set[str] = set()
        whole_sweep = False
        for _eid, f in entries:
            if f.get("sweep") != self.sid:
                continue
            tid = f.get("trial") or ""
            if tid:
                dirty.add(tid)
            elif f.get("kind") == "sweep":
                whole_sweep = True  # stop/cancel changed queued/running trials in one script
        if entries:
            self.last_event = entries[-1][0]
        if whole_sweep:
            dirty.update(t for t, rec in self.by_id.items() if rec["state"] in IN_FLIGHT)
        known = len(self.order)
        self._fetch(sorted(t for t in dirty if t in self.by_id))
        if n > known:
            self._fetch_from_rank(known)
        if len(self.order) != len(self.by_id):  # paranoia: keep order and records aligned
            self.order = [t for t in self.store.trial_ids(self.sid) if t in self.by_id]

    def trials(self) -> list[dict[str, Any]]:
        """The records in creation order (a snapshot: safe to sort without the lock)."""
        with self.lock:
            return [self.by_id[t] for t in self.order if t in self.by_id]


class TrialCache:
    """Per-process LRU of :class:`SweepTrials` (the few sweeps people are looking at)."""

    def __init__(self, store: Store, max_sweeps: int = 32) -> None:
        self.store = store
        self.max_sweeps = max_sweeps
        self._sweeps: OrderedDict[str, SweepTrials] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sid: str, min_interval: float = 0.2) -> SweepTrials:
        """Fresh records of one sweep; raises :class:`NotFound` for an unknown sweep."""
        with self._lock:
            st = self._sweeps.get(sid)
            if st is None:
                if not self.store.sweep_exists(sid):
                    raise NotFound(f"unknown sweep {sid!r}")
                st = self._sweeps[sid] = SweepTrials(self.store, sid)
            self._sweeps.move_to_end(sid)
            while len(self._sweeps) > self.max_sweeps:
                self._sweeps.popitem(last=False)
        try:
            st.refresh(min_interval)
        except NotFound:
            with self._lock:
                self._sweeps.pop(sid, None)
            raise
        return st

    def objective_names(self, sid: str) -> list[str]:
        """A sweep's objective names (``[]`` for one metric): from its cached records when the
        sweep is being viewed (no refresh), else one read of the sweep's hash."""
        with self._lock:
            st = self._sweeps.get(sid)
        if st is not None:
            return st.objective_names()
        return [o["name"] for o in self.store.sweep_objectives(sid)]


# -- queries ------------------------------------------------------------------------------------
def sweep_statuses(store: Store) -> list[dict[str, Any]]:
    """Every sweep's ``status`` shape in the store's order (newest last); a sweep deleted
    between the listing and its read is left out."""
    out = []
    for sid in store.list_sweeps():
        try:
            out.append(store.status(sid))
        except NotFound:
            continue
    return out


def sweep_config(store: Store, sid: str) -> dict[str, Any]:
    """The normalised config a sweep runs with, without the ``_normalised`` marker that records
    written by older releases carry (it is no part of the config)."""
    return {k: v for k, v in store.sweep_config(sid).items() if k != "_normalised"}


def runs(cached: SweepTrials, states: set[str] | None, sort: str) -> tuple[int, list[dict[str, Any]]]:
    """(runs in the sweep, the runs in ``states`` (None: all) sorted by ``sort`` (``""``:
    creation order)); remembered until the sweep's records change."""

    def view() -> tuple[int, list[dict[str, Any]]]:
        trials = cached.trials()
        total_all = len(trials)
        if states is not None:
            trials = [t for t in trials if t["state"] in states]
        if sort:
            trials = sort_runs(trials, sort, cached.objective_names())
        return total_all, trials

    result: tuple[int, list[dict[str, Any]]] = cached.memo(
        ("runs", frozenset(states) if states else None, sort), view
    )
    return result


def run_of(store: Store, sid: str, tid: str) -> dict[str, Any]:
    """The full record of run ``tid`` of sweep ``sid`` (with its metric history); NotFound for an
    unknown sweep, or a run that does not exist or belongs to another sweep."""
    if not store.sweep_exists(sid):
        raise NotFound(f"unknown sweep {sid!r}")
    try:
        t = store.get_trial(tid, history=True)
    except NotFound:
        raise NotFound(f"unknown run {tid!r} in sweep {sid!r}") from None
    if t["sweep"] != sid:
        raise NotFound(f"unknown run {tid!r} in sweep {sid!r}")
    return t


def run_detail(
    store: Store, t: dict[str, Any], rows: int, objectives: list[str] | None = None
) -> dict[str, Any]:
    """The ``run`` shape of record ``t`` (with ``objectives`` for a multi-objective sweep, whose
    objective names ``objectives`` are) plus ``log_tail``, ``reason``, ``history``,
    ``queued_at``, ``queue``, ``stop``, its last ``rows`` logged rows (0: none) and the numeric
    keys it logged."""
    out = Store.run_json(t, objectives)
    out.update(
        {
            "log_tail": t["log_tail"],
            "reason": t["reason"],
            "history": t["history"],
            "queued_at": t["queued_at"],
            "queue": t["queue"],
            "stop": t["stop"],
            "rows": store.trial_rows(t["id"], limit=rows) if rows else [],
            "keys": row_keys(store, t["id"]),
        }
    )
    return out


def curve_runs(cached: SweepTrials, goal: str, ids: list[str]) -> list[str]:
    """The runs whose curves to draw: those of ``ids`` the sweep has, or its 5 best when none
    are asked for."""
    if not ids:
        best: list[str] = cached.memo(("best5", goal), lambda: best_ids(cached.trials(), goal, 5))
        return best
    return [i for i in ids if i in cached.by_id]


def check_sort(sort: str, objectives: list[str] | None = None) -> str:
    """The field of ``[-]field`` (``objectives.<name>`` for one of ``objectives``, a
    multi-objective sweep's objective names); ValueError (a 400) for an unknown one."""
    field = sort.lstrip("-+") or "id"
    if field.startswith(OBJECTIVE_SORT) and field[len(OBJECTIVE_SORT) :] in (objectives or ()):
        return field
    if field not in SORT_KEYS:
        known = list(SORT_KEYS) + [OBJECTIVE_SORT + name for name in objectives or ()]
        raise ValueError(f"sort: unknown field {field!r} (one of {', '.join(known)})")
    return field


def sort_runs(
    trials: list[dict[str, Any]], sort: str, objectives: list[str] | None = None
) -> list[dict[str, Any]]:
    """Sort by ``field`` or ``-field`` (``objectives.<name>``: by that objective of a
    multi-objective sweep, whose objective names ``objectives`` are); runs without a value always
    come last (in creation order). Stable, and written for 10,000 runs per poll: one partition
    pass, C-level keys."""
    desc = sort.startswith("-")
    field = check_sort(sort, objectives)
    by_n = itemgetter("n")
    if field == "id":
        return sorted(trials, key=by_n, reverse=desc)
    value: Any = itemgetter(field)
    if field not in SORT_KEYS:  # objectives.<name>
        name = field[len(OBJECTIVE_SORT) :]

        def value(t: dict[str, Any]) -> Any:
            return (t.get("objectives") or {}).get(name)

    have: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for t in trials:
        (missing if value(t) is None else have).append(t)
    try:
        have.sort(key=value, reverse=desc)
    except TypeError:  # mixed types (should not happen): compare as text
        have.sort(key=lambda t: str(value(t)), reverse=desc)
    missing.sort(key=by_n)
    return have + missing


def pareto_runs(cached: SweepTrials) -> list[dict[str, Any]]:
    """The runs (``run`` shape, with ``objectives``) on a multi-objective sweep's Pareto front,
    best first on the first objective (:func:`sweepq.pareto.front`): what
    ``Store.pareto_front`` answers, from the cached records; ``[]`` for one metric."""
    objs = cached.objectives()
    if not objs:
        return []
    names = [o["name"] for o in objs]

    def compute() -> list[dict[str, Any]]:
        return [Store.run_json(dict(t), names) for t in pareto.front(cached.trials(), objs)]

    result: list[dict[str, Any]] = cached.memo(("pareto-runs",), compute)
    return result


def pareto_points(
    trials: list[dict[str, Any]], objectives: list[dict[str, str]], limit: int = 5000
) -> dict[str, Any]:
    """The Pareto panel's data: ``{"objectives", "points", "front", "total", "incomplete"}``.

    ``points``: the finished runs with a finite value of every objective, in creation order,
    each ``{"id", "values" (in objective order), "front", "state"}``; ``front``: the ids of those
    on the front, best first on the first objective (ties all on it, :mod:`sweepq.pareto`);
    ``total``: how many such runs there are; ``incomplete``: finished runs lacking a value. Past
    ``limit`` points, every front point is kept and the dominated ones are thinned evenly (a
    scatter of 10,000 points shows nothing more than one of 5,000). ``[]`` everywhere for a sweep
    of one metric."""
    if not objectives:
        return {"objectives": [], "points": [], "front": [], "total": 0, "incomplete": 0}
    names = [o["name"] for o in objectives]
    goals = [o.get("goal", "minimize") for o in objectives]
    done = [t for t in trials if t["state"] == "finished"]
    values = [pareto.objective_values(t, names) for t in done]
    complete = [i for i, v in enumerate(values) if all(x is not None for x in v)]
    on_front = pareto.front_indices(values, goals)
    front_set = set(on_front)
    keep = complete
    rest = [i for i in complete if i not in front_set]
    room = max(0, limit - len(on_front))
    if len(rest) > room:
        picked = (
            {rest[round(j * (len(rest) - 1) / (room - 1))] for j in range(room)}
            if room > 1
            else set(rest[:room])
        )
        keep = [i for i in complete if i in front_set or i in picked]
    return {
        "objectives": [{"name": o["name"], "goal": o.get("goal", "minimize")} for o in objectives],
        "points": [
            {"id": done[i]["id"], "values": values[i], "front": i in front_set, "state": done[i]["state"]}
            for i in keep
        ],
        "front": [done[i]["id"] for i in on_front],
        "total": len(complete),
        "incomplete": len(done) - len(complete),
    }


def best_ids(trials: list[dict[str, Any]], goal: str, k: int = 5) -> list[str]:
    """Ids of the ``k`` runs with the best metric value (a heap: no full sort per poll)."""
    scored = [t for t in trials if t["metric"] is not None]
    pick = heapq.nlargest if goal == "maximize" else heapq.nsmallest
    return [t["id"] for t in pick(k, scored, key=itemgetter("metric"))]


def parse_states(raw: str | None) -> set[str] | None:
    """The states of ``?state=a,b`` (None: no filter); ValueError (a 400) for an unknown one."""
    if not raw:
        return None
    states = {s.strip() for s in raw.split(",") if s.strip()}
    bad = sorted(states - set(TRIAL_STATES))
    if bad:
        raise ValueError(f"state: unknown trial state {bad[0]!r} (one of {', '.join(TRIAL_STATES)})")
    return states


def curves(store: Store, tids: list[str], key: str, max_points: int = 2000) -> list[dict[str, Any]]:
    """Metric-versus-step series of some runs, from the rows each run logged.

    The step is the row's ``_step`` (what ``run.log`` writes) or ``step`` when numeric, else the
    row's index among rows that hold ``key``. Long series are thinned evenly to ``max_points``.
    """
    out = []
    for tid, rows in zip(tids, store.rows_of(tids), strict=True):
        steps: list[float] = []
        values: list[float] = []
        for row in rows:
            if key not in row:
                continue
            v = row_number(row[key])
            if v is None:
                continue
            s = row_number(row.get("_step", row.get("step")))
            steps.append(s if s is not None else float(len(values)))
            values.append(v)
        if len(values) > max_points:
            idx = [round(i * (len(values) - 1) / (max_points - 1)) for i in range(max_points)]
            steps = [steps[i] for i in idx]
            values = [values[i] for i in idx]
        out.append({"id": tid, "steps": steps, "values": values})
    return out


def row_keys(store: Store, tid: str, limit: int = 200) -> list[str]:
    """The numeric keys a run logged (for the curve picker), from its last ``limit`` rows."""
    keys: dict[str, None] = {}
    for row in store.rows_of([tid], last=limit)[0]:
        for k, v in row.items():
            if not k.startswith("_") and row_number(v) is not None:
                keys[k] = None
    return list(keys)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(v: Any) -> str:
    """A parameter value as text that tells values apart (``1`` from ``"1"``)."""
    return json.dumps(v, sort_keys=True, default=str)


def _label(v: Any) -> str:
    """A categorical value as the text of its tick: strings as they are, anything else as JSON."""
    return v if isinstance(v, str) else _key(v)


def _names(flat: list[dict[str, Any]]) -> list[str]:
    """Every parameter name of some run, in order of first appearance."""
    names: dict[str, None] = {}
    for f in flat:
        for k in f:
            names[k] = None
    return list(names)


def parallel(trials: list[dict[str, Any]], goal: str, limit: int = 2000) -> dict[str, Any]:
    """Parallel-coordinates data: one axis per parameter, the metric last.

    Runs with a metric value only, the best ``limit`` of them (a plot of 10,000 lines shows
    nothing more than one of 1,000). Numeric axes carry values; others are categorical with
    ``ticktext`` and integer codes. A run that lacks a parameter (a conditional one whose
    ``when`` did not hold) has ``null`` on that axis, never a value or a category of its own, and
    the dimension counts such runs in ``absent``; the page draws them at an "(absent)" tick
    below the axis, so every run keeps its line through the other axes. A value the run does
    hold as ``null`` is a category (``"null"``), so ``null`` in ``values`` always means absent.
    """
    scored = [t for t in trials if t["metric"] is not None]
    scored.sort(key=lambda t: t["metric"], reverse=(goal == "maximize"))
    scored = scored[:limit]
    flat = [dotted(t["params"]) for t in scored]
    dims = []
    for name in _names(flat):
        present = [f[name] for f in flat if name in f]
        absent = len(flat) - len(present)
        if len({_key(v) for v in present}) + (absent > 0) < 2 and len(flat) > 1:
            continue  # a constant axis says nothing (W&B leaves them out too)
        dim: dict[str, Any]
        if all(_is_number(v) for v in present):
            dim = {"name": name, "type": "numeric", "values": [f.get(name) for f in flat]}
        else:
            keys = sorted({_key(v): _label(v) for v in present}.items(), key=lambda kv: kv[1])
            code = {k: i for i, (k, _) in enumerate(keys)}
            enc = [code[_key(f[name])] if name in f else None for f in flat]
            dim = {"name": name, "type": "categorical", "values": enc, "ticktext": [lab for _, lab in keys]}
        if absent:
            dim["absent"] = absent
        dims.append(dim)
    return {
        "ids": [t["id"] for t in scored],
        "metric": [t["metric"] for t in scored],
        "dimensions": dims,
        "total_scored": sum(1 for t in trials if t["metric"] is not None),
    }


class ImportanceCache:
    """Random-forest parameter importance per sweep, recomputed only when the set of scored runs
    grew (a fit on 1,000 runs takes a few hundred ms: too slow to run on every 2 s poll)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, sid: str, trials: list[dict[str, Any]], min_age: float = 5.0) -> dict[str, Any]:
        scored = [t for t in trials if t["metric"] is not None and t["state"] == "finished"]
        with self._lock:
            hit = self._cache.get(sid)
        if hit and (hit[0] == len(scored) or (hit[2]["params"] and time.monotonic() - hit[1] < min_age)):
            return hit[2]  # unchanged, or fresh enough (but "not enough runs" is never kept)
        res = importance(scored)
        with self._lock:
            self._cache[sid] = (len(scored), time.monotonic(), res)
        return res


def importance(scored: list[dict[str, Any]], max_samples: int = 1000, min_runs: int = 5) -> dict[str, Any]:
    """Each parameter's random-forest importance for the metric, and its linear correlation
    with the metric (as W&B's parameter-importance panel shows both).

    Categorical parameters are one-hot encoded and their columns' importances summed, so a
    parameter's importance does not depend on the order of its values.

    A parameter that some runs lack (a conditional one) is judged only on the runs that have
    it: parameters present in exactly the same runs share one forest, fitted on those runs with
    every parameter they all have (so ``momentum``, present where ``optimizer`` is ``sgd``, is
    weighed against ``lr`` among the sgd runs). An absent value is never imputed nor made a
    category. Each row's ``n`` says on how many runs it was judged; a parameter present in fewer
    than ``min_runs`` of them is listed in ``too_few`` instead. Without conditional parameters
    this is one forest over all runs, and the importances sum to 1.
    """
    n = len(scored)
    if n < min_runs:
        return {
            "n": n,
            "params": [],
            "too_few": [],
            "note": f"needs at least {min_runs} finished runs with the metric",
        }
    if n > max_samples:  # evenly spaced, deterministic subsample
        scored = [scored[round(i * (n - 1) / (max_samples - 1))] for i in range(max_samples)]
    import numpy as np

    flat = [dotted(t["params"]) for t in scored]
    names = _names(flat)
    y = np.array([t["metric"] for t in scored], dtype=float)
    present = {name: frozenset(i for i, f in enumerate(flat) if name in f) for name in names}
    groups: dict[frozenset[int], list[str]] = {}
    for name in names:
        groups.setdefault(present[name], []).append(name)
    rows: list[dict[str, Any]] = []
    too_few: list[str] = []
    for runs, members in sorted(groups.items(), key=lambda g: -len(g[0])):
        if len(runs) < min_runs:
            too_few.extend(members)
            continue
        idx = sorted(runs)
        features = [q for q in names if present[q] >= runs]  # what every one of these runs has
        rows.extend(_forest_rows([flat[i] for i in idx], y[idx], features, members))
    if not rows:
        note = "no parameters vary"
        if too_few:
            note = f"needs at least {min_runs} finished runs with each parameter"
        return {"n": n, "params": [], "too_few": too_few, "note": note}
    rows.sort(key=lambda r: -r["importance"])
    return {"n": n, "params": rows, "too_few": too_few, "note": ""}


def _forest_rows(
    flat: list[dict[str, Any]], y: Any, features: list[str], members: list[str]
) -> list[dict[str, Any]]:
    """The importance rows of ``members`` from one forest fitted on these runs (each of which
    has every one of ``features``); constants are left out."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    cols: list[list[float]] = []
    owner: list[str] = []
    corr: dict[str, float | None] = {}
    for name in features:
        vals = [f[name] for f in flat]
        if len({_key(v) for v in vals}) < 2:
            continue  # constants cannot matter
        if all(_is_number(v) for v in vals):
            x = np.array(vals, dtype=float)
            finite = np.isfinite(x)
            x = np.where(finite, x, x[finite].mean() if finite.any() else 0.0)
            cols.append(list(x))
            owner.append(name)
            corr[name] = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else None
        else:
            for key in sorted({_key(v) for v in vals}):
                cols.append([1.0 if _key(v) == key else 0.0 for v in vals])
                owner.append(name)
            corr[name] = None
    if not cols:
        return []
    X = np.array(cols, dtype=float).T
    forest = RandomForestRegressor(n_estimators=48, random_state=0, n_jobs=1, min_samples_leaf=2)
    forest.fit(X, y)
    imp: dict[str, float] = {}
    for name, v in zip(owner, forest.feature_importances_, strict=True):
        imp[name] = imp.get(name, 0.0) + float(v)
    return [
        {"param": k, "importance": imp[k], "correlation": finite_number(corr.get(k)), "n": len(flat)}
        for k in dict.fromkeys(owner)
        if k in members
    ]
