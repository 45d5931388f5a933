"""The runner's line splitter gives exactly the lines ``readline(MAX_LINE + 1)`` would, however the
pipe happens to cut the output into reads (the I/O thread reads whatever is there, in chunks)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepq import runner


@pytest.fixture(autouse=True)
def small_max_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_LINE", 16)  # lines around the limit without megabytes of data


pieces = st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=25)
cuts = st.lists(st.integers(1, 50), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(pieces, cuts)
def test_feed_splits_like_readline(parts: list[tuple[int, bool]], sizes: list[int]) -> None:
    data = b"".join(b"x" * n + (b"\n" if nl else b"") for n, nl in parts)
    r = io.BytesIO(data)
    expected = list(iter(lambda: r.readline(runner.MAX_LINE + 1), b""))
    got: list[bytes] = []
    s = runner._Stream("stdout", io.BytesIO(), None)
    s.line = got.append  # type: ignore[method-assign]
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        s.feed(data[i : i + n])
        i, k = i + n, k + 1
    s.close()
    assert got == expected
