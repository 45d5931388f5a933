"""The ``sweepq`` command.

Commands live in submodules by area (config commands, sweep commands, servers); each registers
itself on :data:`main`. Exit codes (README.md): 0 success, 2 bad input,
3 unknown sweep or nothing to show, 1 anything else; errors are one line on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from sweepq import __version__
from sweepq.ids import is_run_id, is_sweep_id, shown

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_BROKEN_PIPE = 141
"""The reader of our output went away (``sweepq runs ID | head -1``): the status a shell reports
for a program that SIGPIPE ended, as ``cat`` or ``seq`` would give, so ``set -o pipefail`` sees the
same; nothing is printed."""


class CliError(click.ClickException):
    """A user-facing error: printed as one line on stderr, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it from the instance

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"error: {self.format_message()}", err=True)


class _IdType(click.ParamType):
    """A sweep or run id argument, checked before the command runs: exit 2 with one line, so an
    id sweepq could not have made never reaches a Redis key name."""

    def __init__(self, name: str, check: Callable[[object], bool], shape: str) -> None:
        self.name, self._check, self._shape = name, check, shape

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if self._check(value):
            return value
        raise CliError(
            f"not a {self.name.lower().replace('_', ' ')}: {shown(value)} ({self._shape})", EXIT_BAD_INPUT
        )


SWEEP_ID = _IdType("SWEEP_ID", is_sweep_id, "sweep ids are 1-64 lowercase letters and digits")
RUN_ID = _IdType("RUN_ID", is_run_id, "run ids are <sweep id>-<number>")


def _quiet_broken_pipe() -> NoReturn:
    """Exit as a program that SIGPIPE ended, without Python's "Exception ignored ...
    BrokenPipeError" at shutdown: what is still buffered goes to /dev/null instead."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # a stream without a descriptor
            pass
    sys.exit(EXIT_BROKEN_PIPE)


class _Group(click.Group):
    """Click group whose usage errors exit 2 with one line, and whose unexpected errors never
    print a traceback (set SWEEPQ_DEBUG=1 to see one)."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug or an environment failure: one line, exit 1
            from sweepq.settings import Settings, SettingsError

            try:
                debug = Settings.from_env().debug
            except SettingsError:  # the error being reported may be that very variable
                debug = False
            if debug:
                raise
            from sweepq.errors import SweepqError
            from sweepq.store import redis_url_from_env, unavailable

            # sweepq's own errors say what is wrong in one line and carry their exit code; a Redis
            # error is named (full, unreachable, wrong URL)
            named = exc if isinstance(exc, SweepqError) else unavailable(exc, redis_url_from_env())
            if named is not None:
                click.echo(f"error: {' '.join(str(named).split())}"[:500], err=True)
                sys.exit(named.exit_code)
            click.echo(f"error: {type(exc).__name__}: {exc}".splitlines()[0][:500], err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="sweepq")
def main() -> None:
    """sweepq: hyperparameter sweeps on your own machines (W&B-compatible configs)."""


def _register() -> None:
    # Imported for their side effect of adding commands to ``main``; a missing module (work in
    # progress) must not break the others.
    import importlib

    for name in ("config_cmds", "sweep_cmds", "server_cmds"):
        try:
            importlib.import_module(f"sweepq.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sweepq.cli.{name}":
                raise


_register()
