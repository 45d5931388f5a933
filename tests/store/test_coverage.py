"""The contract suite covers the whole public face of the store: every public method of ``Store``
is called by at least one test of this folder. A method added to the store without a contract
test here fails this test (by name), so the suite grows with the store."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from sweepq.store import Store


def test_every_public_method_of_the_store_is_exercised() -> None:
    here = Path(__file__).parent
    called = set()
    for path in here.glob("test_*.py"):
        if path.name != Path(__file__).name:
            called.update(re.findall(r"\.(\w+)\(", path.read_text()))
    public = {
        name for name, member in inspect.getmembers(Store) if not name.startswith("_") and callable(member)
    }
    assert sorted(public - called) == []
