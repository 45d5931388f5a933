"""``sweepq sweep | controller | agent | run | status | list | runs | best | pause | resume | stop |
cancel``: the commands that talk to the store."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from sweepq import pareto
from sweepq.agents import AgentProcess, default_slots
from sweepq.cli import EXIT_BAD_INPUT, EXIT_NOT_FOUND, RUN_ID, SWEEP_ID, CliError, main
from sweepq.errors import Unavailable
from sweepq.settings import Settings
from sweepq.store import NotFound, Store, StoreError, probe, redact

log = logging.getLogger("sweepq.cli")


# -- where the store is ---------------------------------------------------------------------------
class _Session:
    """The store this command talks to, and the embedded server it started (if any)."""

    def __init__(self, store: Store, embedded: Any = None) -> None:
        self.store = store
        self.embedded = embedded

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def open_session(embedded: bool = False, start_embedded: bool = False) -> _Session:
    """Find the store: ``SWEEPQ_REDIS_URL``; else a Redis on 127.0.0.1:6379; else the embedded
    server's data under ./.sweepq (started for the command); else, if allowed, a new one."""
    from sweepq import embedded as emb

    settings = Settings.from_env()
    url = settings.redis_url if settings.redis_url_given else None
    if url and not embedded:
        store = Store(url=url)  # a URL redis-py cannot use: BadRedisURL, one line, exit 2
        try:  # one quick try (the store's client retries for seconds): is it there, is it usable
            probe(url)
        except Unavailable as named:  # the cause in one line: unreachable, password, missing database
            raise CliError(f"{named} (SWEEPQ_REDIS_URL)", named.exit_code) from None
        return _Session(store)
    default = settings.redis_url  # 127.0.0.1:6379 (SWEEPQ_DEFAULT_REDIS_URL moves it, for tests)
    if not embedded and emb.redis_answers(default, 0.5):
        return _Session(Store(url=default))
    has_data = (Path(emb.DEFAULT_DIR) / "redis").is_dir()
    if embedded or start_embedded or has_data:
        server = emb.start(emb.DEFAULT_DIR)
        os.environ["SWEEPQ_REDIS_URL"] = server.url
        return _Session(Store(url=server.url), server)
    raise CliError(
        f"cannot reach Redis at {redact(default)}: start one, set SWEEPQ_REDIS_URL, "
        "or use `sweepq run` (it starts an embedded server)"
    )


@contextlib.contextmanager
def session(sweep_id: str | None = None, **kwargs: Any):  # noqa: ANN201
    """The store for a command; with ``sweep_id``, the store that has that sweep: a sweep made by
    an embedded ``sweepq run`` here is found in ./.sweepq even when another Redis answers."""
    from sweepq import embedded as emb

    s = open_session(**kwargs)
    try:
        local = (Path(emb.DEFAULT_DIR) / "redis").is_dir()
        if (
            sweep_id
            and s.embedded is None
            and local
            and not Settings.from_env().redis_url_given
            and not s.store.sweep_exists(sweep_id)
        ):
            s.close()
            s = open_session(embedded=True)
        yield s
    finally:
        s.close()


def _load(config_path: str) -> dict[str, Any]:
    from sweepq.config import ConfigError, load_config

    try:
        return load_config(Path(config_path)) if os.path.exists(config_path) else load_config(config_path)
    except ConfigError as exc:
        for e in exc.errors:
            click.echo(f"{config_path}: {e}", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None


def _need_sweep(store: Store, sid: str) -> None:
    if not store.sweep_exists(sid):
        raise CliError(f"unknown sweep {sid!r}", EXIT_NOT_FOUND)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str))


# -- sweep ----------------------------------------------------------------------------------------
@main.command("sweep")
@click.argument("config_path", metavar="CONFIG")
@click.option("-q", "--quiet", is_flag=True, help="Print only the sweep id.")
def sweep_cmd(config_path: str, quiet: bool) -> None:
    """Register a sweep; the controller starts it."""
    config = _load(config_path)
    with session() as s:
        sid = s.store.create_sweep(config)
    if quiet:
        click.echo(sid)
    else:
        click.echo(f"Created sweep {sid}")
        click.echo(f"Run trials with: sweepq agent {sid}   (or celery -A sweepq.worker worker)")
        click.echo(sid)


# -- controller -----------------------------------------------------------------------------------
@main.command("controller")
@click.option("--tick", default=0.5, show_default=True, help="Seconds between passes when idle.")
def controller_cmd(tick: float) -> None:
    """The long-running controller for all sweeps (SIGTERM: clean exit)."""
    from sweepq.controller import Controller

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with session() as s:
        ctl = Controller(s.store, tick=tick)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: ctl.stop_event.set())
        ctl.run()


# -- agent / worker process -------------------------------------------------------------------------
def run_agent_process(
    sweep_id: str,
    count: int | None = None,
    gpus: str | None = None,
    workers: int | None = None,
    controller: bool = True,
) -> int:
    """Run trials of one sweep on this machine until it ends or ``count`` trials ran."""
    from sweepq.agents import run_agent
    from sweepq.gpus import detect_gpus, parse_gpu_list

    with session(sweep_id) as s:
        _need_sweep(s.store, sweep_id)
        gpu_list = parse_gpu_list(gpus) if gpus is not None else detect_gpus()
        return run_agent(
            s.store,
            sweep_id,
            count=count,
            gpu_list=gpu_list,
            gpus_given=gpus is not None,
            workers=workers,
            controller=controller,
            say=lambda m: click.echo(m, err=True),
        )


@main.command("agent")
@click.argument("sweep_id", type=SWEEP_ID)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N trials.")
@click.option("--gpus", default=None, help="GPU ids to use, e.g. 0,1 (default: all detected).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent trials (default: one per GPU slot, else 1).",
)
@click.option("--no-controller", is_flag=True, help="Do not run a standby controller in this process.")
def agent_cmd(
    sweep_id: str, count: int | None, gpus: str | None, workers: int | None, no_controller: bool
) -> None:
    """Run this sweep's trials on this machine (a Celery worker bound to the sweep)."""
    sys.exit(
        run_agent_process(sweep_id, count=count, gpus=gpus, workers=workers, controller=not no_controller)
    )


# -- run: everything on one machine -----------------------------------------------------------------
def _config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@main.command("run")
@click.argument("config_path", metavar="CONFIG")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent trials on this machine (default: one per GPU, else 2).",
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Run at most N trials (a run_cap).")
@click.option("--embedded", is_flag=True, help="Use the embedded store even if a Redis answers.")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON on stdout.")
@click.option("--new", is_flag=True, help="Start a new sweep even if an unfinished one matches.")
def run_cmd(
    config_path: str, workers: int | None, count: int | None, embedded: bool, as_json: bool, new: bool
) -> None:
    """Register a sweep, control it and run its trials here, with a live progress bar."""
    from sweepq.controller import run_controller_thread
    from sweepq.gpus import detect_gpus

    config = _load(config_path)
    if count:
        config["run_cap"] = min(int(config.get("run_cap") or count), count)
    digest = _config_digest(config)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    s = open_session(embedded=embedded, start_embedded=True)
    store = s.store
    interrupted = threading.Event()
    agent = ctl = th = None
    try:
        sid = None if new else store.find_active_by("digest", digest)
        if sid:
            click.echo(f"resuming sweep {sid}", err=True)
        else:
            sid = store.create_sweep(config)
            store.set_sweep_fields(
                sid,
                digest=digest,
                source=str(Path(config_path).resolve()) if os.path.exists(config_path) else "",
            )
        gpus = detect_gpus()
        slots = workers or (default_slots(gpus, int(config.get("gpus_per_trial") or 1)) if gpus else 2)
        ctl, th = run_controller_thread(store, tick=0.25)
        agent = AgentProcess(store, sid, slots)
        agent.start()
        prev = {
            sig: signal.signal(sig, lambda *_: interrupted.set()) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        where = f"embedded {s.embedded.kind}" if s.embedded else redact(Settings.from_env().redis_url)
        click.echo(
            f"sweep {sid}: {config['method']} search, {slots} worker slot(s), store: {where}", err=True
        )
        _progress(store, sid, config, interrupted, agent, quiet=as_json)
        for sig, h in prev.items():
            signal.signal(sig, h)
    finally:
        if agent is not None:
            agent.stop()
        if ctl is not None and th is not None:
            ctl.stop_event.set()
            th.join(timeout=5)
    try:
        status = store.status(sid)
        if as_json:
            _echo_json(status)
        else:
            _print_summary(store, sid, status)
        if interrupted.is_set():
            click.echo(f"interrupted: sweep {sid} kept; run the same command again to resume", err=True)
    finally:
        s.close()
    if interrupted.is_set():
        sys.exit(130)
    # a sweep that ended without one finished trial did not do what was asked of it
    ok = status["state"] in ("finished", "stopped") and status["counts"]["finished"] > 0
    sys.exit(0 if ok else 1)


def _progress(
    store: Store,
    sid: str,
    config: dict[str, Any],
    interrupted: threading.Event,
    agent: AgentProcess,
    quiet: bool,
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cap = config.get("run_cap")
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=False,
    ) as prog:
        task = prog.add_task(sid, total=cap, info="")
        dead_since = None
        failures = _FailureFeed(store, sid, console)
        while not interrupted.wait(0.3):
            st = store.status(sid)
            c = st["counts"]
            done = sum(c[k] for k in ("finished", "failed", "crashed", "stopped", "canceled"))
            best = st["best"]
            info = f"running {c['running']}  failed {c['failed'] + c['crashed']}  " + (
                f"best {best['value']:.6g}" if best else "best -"
            )
            prog.update(task, completed=done, info=info)
            failures.show(c["failed"] + c["crashed"])
            if sid not in store.active_sweeps():
                failures.show(store.status(sid)["counts"]["failed"] + store.status(sid)["counts"]["crashed"])
                break
            if not agent.alive():
                dead_since = dead_since or time.monotonic()
                if time.monotonic() - dead_since > 2:
                    code = agent.proc.returncode if agent.proc is not None else None
                    raise CliError(f"the worker process exited (code {code}); see {agent.log_path}")


class _FailureFeed:
    """Prints each failed trial's cause as it happens (its reason and the last lines it wrote to
    stderr), up to ``limit``; the rest are counted in the summary."""

    def __init__(self, store: Store, sid: str, console: Any, limit: int = 10) -> None:
        self.store, self.sid, self.console, self.limit = store, sid, console, limit
        self.seen: set[str] = set()

    def show(self, n_failed: int) -> None:
        if n_failed <= len(self.seen) or len(self.seen) >= self.limit:
            return
        for t in self.store.get_trials(self.store.trial_ids(self.sid), history=False):
            if t["state"] not in ("failed", "crashed") or t["id"] in self.seen:
                continue
            self.seen.add(t["id"])
            if len(self.seen) > self.limit:
                return
            lines = [ln for ln in (t["log_tail"] or "").splitlines() if ln.strip()][-3:]
            self.console.print(
                f"[red]trial {t['id']} {t['state']}[/red]: {t['reason'] or 'exit code ' + str(t['exit_code'])}",
                markup=True,
                highlight=False,
            )
            for ln in lines:
                self.console.print(f"    {ln}", markup=False, highlight=False)
            if len(self.seen) == self.limit:
                self.console.print(
                    f"    (more failures are counted in the summary; sweepq runs {self.sid})",
                    markup=False,
                    highlight=False,
                )


def _print_summary(store: Store, sid: str, status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    trials = [t for t in store.get_trials(store.trial_ids(sid), history=False)]
    goal = status["metric"]["goal"]
    metric = status["metric"]["name"]
    objs = status.get("objectives") or []
    names = [o["name"] for o in objs] or [metric or "metric"]
    if objs:  # several objectives: the front, best first on the first (sweepq best has it all)
        scored = list(pareto.front(trials, objs))
    else:
        scored = [t for t in trials if t["metric"] is not None and t["state"] == "finished"]
        scored.sort(key=lambda t: t["metric"], reverse=(goal == "maximize"))
    table = Table(title=f"sweep {sid}: {status['state']} ({status.get('end_reason') or ''})")
    for col in ("run", "state", *names, "params"):
        table.add_column(col)
    shown = scored[:10] + [t for t in trials if t["state"] in ("failed", "crashed")][:5]
    for t in shown:
        vals = pareto.objective_values(t, names) if objs else [t["metric"]]
        table.add_row(
            t["id"],
            t["state"],
            *["-" if v is None else f"{v:.6g}" for v in vals],
            json.dumps(t["params"], default=str)[:80],
        )
    console.print(table)
    c = status["counts"]
    console.print("  ".join(f"{k} {v}" for k, v in c.items() if v))
    if status["state"] == "failed":
        console.print(f"[red]sweep failed:[/red] {status.get('end_reason')}", highlight=False)
    failed = [t for t in trials if t["state"] in ("failed", "crashed")]
    if failed:
        from collections import Counter

        from sweepq.controller import failure_line

        causes = Counter(failure_line(t) for t in failed)
        console.print(f"{len(failed)} trial(s) failed:", highlight=False)
        for cause, n in causes.most_common(5):
            console.print(f"  {n} x {cause}", markup=False, highlight=False)
        console.print(f"  see one: sweepq logs {failed[0]['id']}", markup=False, highlight=False)
    for w in status.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {w}")
    best = status["best"]
    if objs:
        console.print(
            f"{status['pareto_size']} run(s) on the Pareto front of {', '.join(names)}: sweepq best {sid}",
            highlight=False,
        )
    elif best:
        console.print(
            f"best run {best['run_id']}: {metric} = {best['value']:.6g}  params {json.dumps(best['params'], default=str)}"
        )
    else:
        console.print("no finished run logged the metric")


# -- reading --------------------------------------------------------------------------------------
@main.command("status")
@click.argument("sweep_id", type=SWEEP_ID)
@click.option("--json", "as_json", is_flag=True)
def status_cmd(sweep_id: str, as_json: bool) -> None:
    """State, counts per trial state, best so far."""
    with session(sweep_id) as s:
        _need_sweep(s.store, sweep_id)
        st = s.store.status(sweep_id)
    if as_json:
        _echo_json(st)
        return
    objs = st.get("objectives")
    what = (
        "objectives " + ", ".join(f"{o['name']} ({o['goal']})" for o in objs)
        if objs
        else f"metric {st['metric']['name']} ({st['metric']['goal']})"
    )
    click.echo(f"sweep {st['id']}  state {st['state']}  method {st['method']}  {what}")
    click.echo("  ".join(f"{k} {v}" for k, v in st["counts"].items()))
    b = st["best"]
    if objs:
        click.echo(f"pareto front {st['pareto_size']} run(s) (sweepq best {st['id']})")
    else:
        click.echo(
            f"best {b['run_id']} = {b['value']:.6g} {json.dumps(b['params'], default=str)}" if b else "best -"
        )
    for w in st.get("warnings") or []:
        click.echo(f"warning: {w}")


@main.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """All sweeps."""
    with session() as s:
        rows = [s.store.status(sid) for sid in s.store.list_sweeps()]
        used_embedded = s.embedded is not None
    if not used_embedded and (Path(".sweepq") / "redis").is_dir() and not Settings.from_env().redis_url_given:
        with session(embedded=True) as local:  # sweeps of embedded `sweepq run`s in this folder
            rows += [local.store.status(sid) for sid in local.store.list_sweeps()]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no sweeps")
        return
    for st in rows:
        b = st["best"]
        done = sum(v for k, v in st["counts"].items() if k not in ("queued", "running"))
        click.echo(
            f"{st['id']}  {st['state']:<9} {st['method']:<7} trials {done}/{st['trials']}  "
            f"best {b['value']:.6g}"
            if b
            else f"{st['id']}  {st['state']:<9} {st['method']:<7} trials {done}/{st['trials']}  best -"
        )


RUN_FIELDS = ["id", "state", "params", "metric", "steps", "started_at", "ended_at", "worker", "exit_code"]


@main.command("runs")
@click.argument("sweep_id", type=SWEEP_ID)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
def runs_cmd(sweep_id: str, as_json: bool, as_csv: bool) -> None:
    """Every trial: id, state, params, metric, steps, times, worker, exit code."""
    with session(sweep_id) as s:
        _need_sweep(s.store, sweep_id)
        names = [o["name"] for o in s.store.sweep_objectives(sweep_id)]
        runs = s.store.get_runs(s.store.trial_ids(sweep_id), names or None)
    if as_json:
        _echo_json(runs)
    elif as_csv:
        # a multi-objective sweep: one column per objective in place of "metric", named as logged
        # (objective.NAME where the name is one of the run's own columns: an objective "params")
        cols = [f"objective.{n}" if n in RUN_FIELDS or n == "reason" else n for n in names]
        fields = RUN_FIELDS if not names else RUN_FIELDS[:3] + cols + RUN_FIELDS[4:]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[*fields, "reason"], extrasaction="ignore")
        w.writeheader()
        for r in runs:
            objs = r.get("objectives") or {}
            w.writerow(
                {
                    **r,
                    "params": json.dumps(r["params"], default=str),
                    **{c: objs.get(n) for c, n in zip(cols, names, strict=True)},
                }
            )
        click.echo(buf.getvalue(), nl=False)
    else:
        for r in runs:
            vals = [r["objectives"][n] for n in names] if names else [r["metric"]]
            m = " ".join(f"{'-' if v is None else f'{v:.6g}':>12}" for v in vals)
            click.echo(f"{r['id']:<16} {r['state']:<9} {m}  {json.dumps(r['params'], default=str)}")


@main.command("best")
@click.argument("sweep_id", type=SWEEP_ID)
@click.option("--json", "as_json", is_flag=True)
def best_cmd(sweep_id: str, as_json: bool) -> None:
    """The best finished trial; for several objectives the Pareto front (exit 3 if none yet)."""
    with session(sweep_id) as s:
        _need_sweep(s.store, sweep_id)
        objs = s.store.sweep_objectives(sweep_id)
        front = s.store.pareto_front(sweep_id, objs) if objs else []
        b = None if objs else s.store.best(sweep_id)
    if objs:
        _print_front(sweep_id, objs, front, as_json)
        return
    if b is None:
        raise CliError(f"sweep {sweep_id} has no finished trial with a metric yet", EXIT_NOT_FOUND)
    if as_json:
        _echo_json(b)
    else:
        click.echo(f"{b['run_id']}  {b['value']:.6g}  {json.dumps(b['params'], default=str)}")


def _print_front(
    sweep_id: str, objs: list[dict[str, str]], front: list[dict[str, Any]], as_json: bool
) -> None:
    """``sweepq best`` of a multi-objective sweep: the front as ``{"pareto": [run, ...]}`` or a
    table, best first on the first objective."""
    if not front:
        listed = ", ".join(o["name"] for o in objs)
        raise CliError(
            f"sweep {sweep_id} has no finished trial that logged every objective ({listed}) yet",
            EXIT_NOT_FOUND,
        )
    if as_json:
        _echo_json({"pareto": front})
        return
    names = [o["name"] for o in objs]
    heads = [f"{n} ({'max' if o['goal'] == 'maximize' else 'min'})" for n, o in zip(names, objs, strict=True)]
    widths = [max(12, len(h)) for h in heads]
    click.echo(
        "run".ljust(16) + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths, strict=True)) + "  params"
    )
    for r in front:
        vals = "".join(f"  {r['objectives'][n]:>{w}.6g}" for n, w in zip(names, widths, strict=True))
        click.echo(f"{r['id']:<16}{vals}  {json.dumps(r['params'], default=str)}")
    click.echo(f"{len(front)} run(s) on the Pareto front of {len(names)} objectives")


def _action(name: str, doc: str) -> None:
    @main.command(name, help=doc)
    @click.argument("sweep_id", type=SWEEP_ID)
    def cmd(sweep_id: str) -> None:
        with session(sweep_id) as s:
            _need_sweep(s.store, sweep_id)
            try:
                state = s.store.sweep_action(sweep_id, name)
            except NotFound as exc:
                raise CliError(str(exc), EXIT_NOT_FOUND) from None
            except StoreError as exc:
                raise CliError(str(exc), EXIT_BAD_INPUT) from None
        click.echo(f"sweep {sweep_id}: {state}")


_action("pause", "No new trials until resume; running ones continue.")
_action("resume", "Start new trials again.")
_action("stop", "No new trials; running ones finish.")
_action("cancel", "No new trials; running ones are killed.")


@main.command("logs")
@click.argument("run_id", type=RUN_ID)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the trial ends.")
def logs_cmd(run_id: str, follow: bool) -> None:
    """A trial's captured output (its stdout and stderr, as the program wrote them).

    The whole log file when it is on this machine (``sweepq run``, or a worker here); else the
    output lines the worker streamed to Redis (kept an hour after the trial's last line), else the
    last lines kept with the trial."""
    sid = run_id.rsplit("-", 1)[0]
    with session(sid) as s:
        try:
            t = s.store.get_trial(run_id, history=False)
        except NotFound:
            raise CliError(f"unknown run {run_id!r}", EXIT_NOT_FOUND) from None
        _show_logs(s.store, t, follow)


FINAL = ("finished", "failed", "crashed", "stopped", "canceled")


def _show_logs(store: Store, t: dict[str, Any], follow: bool) -> None:
    out = sys.stdout.buffer
    tid = t["id"]
    path = t.get("log_path") or ""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    out.write(chunk)
                    continue
                out.flush()
                if not follow:
                    return
                if store.get_trial(tid, history=False)["state"] in FINAL:
                    out.write(f.read())  # what came between the last read and the end
                    out.flush()
                    return
                time.sleep(0.25)
    last, shown = "0-0", 0
    while True:
        entries = store.read_output(tid, after=last, block_ms=1000 if follow else None)
        for eid, _stream, text in entries:
            out.write(text.encode("utf-8", "replace") + b"\n")
            last, shown = eid, shown + 1
        out.flush()
        if not follow or (not entries and store.get_trial(tid, history=False)["state"] in FINAL):
            break
    if shown:
        return
    t = store.get_trial(tid, history=False)
    if t["state"] == "queued":
        click.echo(f"run {tid} has not started yet", err=True)
        return
    where = f" on {t['worker']} at {path}" if path else ""
    click.echo(f"(the full log is{where}; these are the last lines kept with the run)", err=True)
    for line in (t["log_tail"] or "").splitlines():
        click.echo(line.split("] ", 1)[1] if line.startswith("[std") and "] " in line else line)
