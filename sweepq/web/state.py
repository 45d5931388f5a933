"""What the parts of one web app share: the store, the read caches, the metrics registry and the
web's settings, kept on the Flask app (``app.extensions["sweepq"]``) so that two apps in one
process (tests, benchmarks) never see each other's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import current_app

from sweepq.store import Store

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from sweepq.web import WebSettings
    from sweepq.web.data import ImportanceCache, TrialCache

EXTENSION = "sweepq"


@dataclass
class WebState:
    """One app's shared parts (made by :func:`sweepq.web.create_app`)."""

    store: Store
    settings: WebSettings
    cache: TrialCache
    importance: ImportanceCache
    registry: CollectorRegistry


def current() -> WebState:
    """The :class:`WebState` of the app handling the current request."""
    return cast(WebState, current_app.extensions[EXTENSION])
