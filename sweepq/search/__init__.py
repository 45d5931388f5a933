"""Search methods: each module exposes ``suggest(config, trials, n, seed) -> list[dict]``.

A method is a pure function of the normalised config and the trials so far (W&B's ``next_run``
design): it keeps no state, so a restarted controller loses nothing and tests need no Redis.
``sweepq.engine.suggest`` picks the module named by ``config["method"]`` and imports it on first
use, so that grid and random never pay for bayes' scientific stack.
"""

METHODS = ("grid", "random", "bayes")
"""The ``method`` values sweepq runs, each the name of a module here (W&B's ``custom`` is not one)."""
