"""The errors a user (or their environment) can cause, each with the CLI exit code and the HTTP
status it means, so the CLI and the API answer the same error the same way.

Exit codes (the CLI's contract): 2 bad input, 3 unknown sweep or run, 1 anything else. Errors are
one line (``str(exc)``), never a traceback; a traceback means a bug of sweepq's own.
"""

from __future__ import annotations


class SweepqError(Exception):
    """Base of every error sweepq raises for something outside its own code."""

    exit_code = 1
    http_status = 500


class BadInput(SweepqError):
    """A config, an argument or a request that cannot be used as given."""

    exit_code = 2
    http_status = 400


class NotFound(SweepqError):
    """An unknown sweep or run."""

    exit_code = 3
    http_status = 404


class Conflict(SweepqError):
    """A request the current state forbids (pausing a finished sweep, a sweep id taken)."""

    exit_code = 2
    http_status = 409


class Unavailable(SweepqError):
    """Redis cannot do what was asked, through no fault of the request: unreachable, out of
    memory, read-only, wrong credentials. The message names the cause and the fix."""

    exit_code = 1
    http_status = 503


class BadRedisURL(Unavailable):
    """The Redis URL itself is wrong (its scheme, its database): the configuration, not an outage."""

    exit_code = 2
