"""How a sweep config's problems are collected and worded: one line per problem, naming its key path.

The config's sections are checked by the modules that own their meaning (``sweepq.config`` the
top level and ``metric``, ``sweepq.params`` the parameters, ``sweepq.stopping`` each
``early_terminate`` rule); all of them report through a :class:`Checker`, so every message has the
same shape, ``<key path>: <what is wrong> (got <value>)``, and no check raises.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "Checker",
    "article",
    "describe",
    "did_you_mean",
    "is_int",
    "is_number",
    "one_line",
    "printable",
]


def is_number(v: Any) -> bool:
    """A JSON number: ``int`` or ``float``, never ``bool``."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v: Any) -> bool:
    """A JSON integer: ``int``, never ``bool``."""
    return isinstance(v, int) and not isinstance(v, bool)


def one_line(text: Any, limit: int = 200) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """One printable line: control characters (a newline in a key name) shown escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def describe(v: Any) -> str:
    """A value as a message names it: ``null``, ``true``, ``the string 'x'``, ``a mapping``..."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"the string {one_line(repr(v), 60)}"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return type(v).__name__


def article(word: str) -> str:
    """``a`` or ``an`` before a distribution's name: "a uniform", "an int_uniform"."""
    return "an" if word[:1] in "aeio" else "a"


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the choice closest to a misspelt ``word``, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _number_hint(v: Any) -> str:
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return ""
        return " (it is quoted: write the number without quotes)"
    return ""


class Checker:
    """Collects the errors and warnings of one config check.

    Each message is ``"<path>: <message>"`` on one printable line. The typed readers return the
    value (converted where the config's rules say so) or ``None`` after recording an error, so a
    check goes on and every problem of a config is reported at once.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(printable(f"{path}: {message}"))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(printable(f"{path}: {message}"))

    def number(self, path: str, v: Any, *, minimum: float | None = None, exclusive: bool = False,
               finite: bool = True) -> float | int | None:  # fmt: skip
        """``v`` if it is a number (finite unless ``finite=False``) at or above ``minimum``
        (strictly above with ``exclusive``)."""
        if not is_number(v):
            self.error(path, f"must be a number (got {describe(v)}){_number_hint(v)}")
            return None
        if finite and not math.isfinite(v):
            self.error(path, f"must be a finite number (got {v!r})")
            return None
        if minimum is not None:
            if exclusive and not v > minimum:
                self.error(path, f"must be greater than {minimum:g} (got {v!r})")
                return None
            if not exclusive and not v >= minimum:
                self.error(path, f"must be at least {minimum:g} (got {v!r})")
                return None
        return v

    def integer(
        self, path: str, v: Any, *, minimum: int | None = None, integral_float: bool = True
    ) -> int | None:
        """``v`` as an ``int`` if it is an integer at or above ``minimum``. An integral float
        (``27.0``) counts unless ``integral_float=False``: JSON Schema's "integer" accepts it, W&B's
        int_uniform adds a format check that does not."""
        ok = is_int(v) or (integral_float and isinstance(v, float) and math.isfinite(v) and v.is_integer())
        if not ok:
            self.error(path, f"must be an integer (got {describe(v)}){_number_hint(v)}")
            return None
        v = int(v)
        if minimum is not None and v < minimum:
            self.error(path, f"must be at least {minimum} (got {v})")
            return None
        return v

    def string(self, path: str, v: Any) -> str | None:
        """``v`` if it is a string."""
        if not isinstance(v, str):
            self.error(path, f"must be a string (got {describe(v)})")
            return None
        return v

    def choice(self, path: str, v: Any, choices: tuple[str, ...]) -> str | None:
        """``v`` if it is one of ``choices``."""
        if not isinstance(v, str) or v not in choices:
            hint = did_you_mean(v, choices)
            self.error(path, f"must be one of {', '.join(choices)} (got {describe(v)}){hint}")
            return None
        return v
