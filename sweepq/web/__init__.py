"""sweepq's web dashboard and HTTP API: :func:`create_app` (a Flask app factory), served by
``sweepq web``.

The parts: :mod:`~sweepq.web.security` (who may reach the app: Host allow-list, trusted proxies,
CSRF, token, headers), :mod:`~sweepq.web.views` (the page, ``/healthz``, Plotly's script,
``/metrics``), :mod:`~sweepq.web.api` (the JSON API) with :mod:`~sweepq.web.openapi` (its
description), :mod:`~sweepq.web.data` (read models: the trial cache, sorting, curves, parallel
coordinates, importance), :mod:`~sweepq.web.metrics` (the Prometheus collector),
:mod:`~sweepq.web.errors` (every failure as one JSON line) and :mod:`~sweepq.web.state` (what
they share).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from sweepq.settings import DEFAULT_FLOWER_URL, Settings
from sweepq.store import Store
from sweepq.web import api, errors, security, views
from sweepq.web.data import ImportanceCache, TrialCache
from sweepq.web.metrics import make_registry
from sweepq.web.security import is_loopback, parse_trusted_proxies
from sweepq.web.state import EXTENSION, WebState
from sweepq.web.views import plotly_js_path

DEFAULT_POLL_MS = 2000


@dataclass(frozen=True)
class WebSettings:
    """What a web app is told: the ``SWEEPQ_*`` variables the web reads (through
    :class:`sweepq.settings.Settings`) and what only a caller can give.

    ``api_token``: required on ``/api`` and ``/metrics`` when set (``""`` counts as none).
    ``flower_url``: where the dashboard's Flower links point. ``allowed_hosts``: the Host names
    served (``"*"``: any; empty: any with a token, else only IP addresses and ``localhost``).
    ``trusted_proxies``: how many reverse proxies' ``X-Forwarded-For/-Proto/-Host/-Port`` to
    apply (0: ignore them; ValueError outside 0-5). ``poll_ms``: the page's refresh interval (0:
    the default). ``controllers``: in-process controllers whose suggestion timings ``/metrics``
    reports.
    """

    api_token: str | None = None
    flower_url: str = DEFAULT_FLOWER_URL
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: int = 0
    poll_ms: int = DEFAULT_POLL_MS
    controllers: tuple[Any, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        normal: dict[str, Any] = {
            "api_token": self.api_token or None,
            "flower_url": self.flower_url or "",
            "allowed_hosts": tuple(self.allowed_hosts or ()),
            "trusted_proxies": parse_trusted_proxies(self.trusted_proxies),
            "poll_ms": int(self.poll_ms or DEFAULT_POLL_MS),
            "controllers": tuple(self.controllers or ()),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WebSettings:
        """The web's part of ``settings``, with ``overrides`` (any field, by name) applied;
        TypeError for an unknown name, ValueError for an unusable ``SWEEPQ_TRUSTED_PROXIES``
        (unless overridden)."""
        values: dict[str, Any] = {
            "api_token": settings.api_token,
            "flower_url": settings.flower_url,
            "allowed_hosts": settings.web_allowed_hosts,
        }
        if "trusted_proxies" not in overrides:
            values["trusted_proxies"] = parse_trusted_proxies(settings.trusted_proxies)
        return cls(**{**values, **overrides})


class _OrderedJSON(DefaultJSONProvider):
    sort_keys = False  # keep the documented key order of the JSON shapes


def create_app(
    store: Store | None = None, settings: WebSettings | Settings | Mapping[str, Any] | None = None
) -> Flask:
    """The Flask app serving ``store`` with ``settings``.

    ``settings`` is a :class:`WebSettings`, the process's :class:`~sweepq.settings.Settings`
    (the web's part is taken), or a mapping of :class:`WebSettings` fields applied over
    ``Settings.from_env()``'s (as tests and benchmarks override a few); None: the environment's.
    ``store`` defaults to one on the settings' Redis URL and namespace. Raises ValueError for an
    unusable ``trusted_proxies`` and TypeError for a mapping key that is not a field.
    """
    env: Settings | None = None
    if isinstance(settings, WebSettings):
        web = settings
    elif isinstance(settings, Settings):
        env, web = settings, WebSettings.from_settings(settings)
    else:
        env = Settings.from_env()
        web = WebSettings.from_settings(env, **dict(settings or {}))
    if store is None:
        env = env or Settings.from_env()
        store = Store(url=env.redis_url, namespace=env.namespace)

    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.json = _OrderedJSON(app)
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 300
    cache = TrialCache(store)
    app.extensions[EXTENSION] = WebState(
        store=store,
        settings=web,
        cache=cache,
        importance=ImportanceCache(),
        registry=make_registry(store, cache, web.controllers),
    )
    security.install(
        app, token=web.api_token, allowed_hosts=web.allowed_hosts, trusted_proxies=web.trusted_proxies
    )
    errors.install(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    return app


__all__ = [
    "DEFAULT_FLOWER_URL",
    "WebSettings",
    "WebState",
    "create_app",
    "is_loopback",
    "parse_trusted_proxies",
    "plotly_js_path",
]
