"""Who may use the web app, and what a browser may do with its pages (``docs/security.md``).

Why it matters: the API creates sweeps, and a sweep's command runs on every worker, so whoever can
write through the API can run commands there. The checks, each answered as one JSON line:

* **Host allow-list (DNS rebinding), 421.** A server that answers without a token answers only
  to Host names a rebinding page cannot pose as: IP addresses, ``localhost``, and the names in
  ``SWEEPQ_WEB_ALLOWED_HOSTS`` (``*``: any). Without it, any page whose name resolves to this
  server could create sweeps. With a token a rebinding page cannot authenticate, so any Host is
  served unless a list is given; a given list is exactly what is served.
* **Trusted proxies (ProxyFix).** Behind ``SWEEPQ_TRUSTED_PROXIES`` reverse proxies, werkzeug's
  ProxyFix applies that many proxies' ``X-Forwarded-For/-Proto/-Host/-Port``, so the Host, scheme
  and client address the checks see are the browser's, not the proxy's. Too many would let a
  client forge them; too few make the browser's writes look cross-site.
* **Cross-site writes (CSRF), 403.** A state-changing ``/api`` request that a browser sent from
  another site's page (``Sec-Fetch-Site: cross-site``, or an ``Origin`` that is not this server)
  is refused: without a token, a page on any site could otherwise create a sweep on a local
  sweepq. curl and scripts send no ``Origin`` and are not affected.
* **Bearer token, 401.** With ``SWEEPQ_API_TOKEN`` set, every ``/api`` call and ``/metrics``
  needs ``Authorization: Bearer <token>`` (compared in constant time). The page shell and
  ``/healthz`` need none: the page asks for the token, then calls ``/api``.
* **Body cap, 413.** A request body over :data:`MAX_BODY` is refused before it is read.
* **Headers.** Every answer carries a Content-Security-Policy of ``'self'`` (the dashboard loads
  no CDN asset, and a browser refuses any other origin should a change try), ``nosniff`` and
  ``no-referrer``; ``/api`` answers are never cached.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlparse

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from sweepq.web.errors import error

MAX_BODY = 1 << 20  # configs are small; a huge body is refused (413)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_TRUSTED_PROXIES = 5
# 'unsafe-eval': Plotly's WebGL traces (parcoords) compile their shaders with new Function().
# 'unsafe-inline' styles: Plotly injects <style> elements. Scripts still come only from 'self'.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def parse_trusted_proxies(value: str | int | None, name: str = "SWEEPQ_TRUSTED_PROXIES") -> int:
    """How many reverse proxies' ``X-Forwarded-*`` headers to believe (0: none; None or ``""``:
    0). Raises ValueError with a one-line message naming ``name`` for anything but an integer
    from 0 to :data:`MAX_TRUSTED_PROXIES`."""
    if value is None or value == "":
        return 0
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if not 0 <= n <= MAX_TRUSTED_PROXIES:
        raise ValueError(
            f"{name} must be the number of reverse proxies in front of sweepq web "
            f"(0-{MAX_TRUSTED_PROXIES}), got {value!r}"
        )
    return n


def is_loopback(host: str) -> bool:
    """True for an address or name only this machine can reach (``127.0.0.1``, ``::1``,
    ``localhost``); anything else, a host name included, counts as reachable from outside."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name part of a Host header, lowercased: no port, no brackets around an IPv6 address."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which Host headers are served (see the module docstring): ``allowed`` as configured
    (``host`` or ``host:port`` entries, ``*`` for any), ``token`` whether one is required."""

    def __init__(self, allowed: Iterable[str], token: bool) -> None:
        self.allowed = {h.strip().lower() for h in allowed if h.strip()}
        self.allowed_names = {host_name(h) for h in self.allowed}
        self.token = token

    def allows(self, host: str) -> bool:
        """Whether a request whose Host header is ``host`` is served."""
        host = host.lower()
        if "*" in self.allowed:
            return True
        if self.allowed:
            return host in self.allowed or host_name(host) in self.allowed_names
        if self.token:
            return True  # a rebinding page has no token: every /api call answers 401
        name = host_name(host)
        return name in LOOPBACK_NAMES or _is_ip(name)

    def refusal(self, host: str) -> str:
        """The message that answers a refused ``host`` (it says how to be served)."""
        if self.allowed:
            return f"unknown host {host!r} (allowed: {', '.join(sorted(self.allowed))})"
        return (
            f"unknown host {host!r}: without SWEEPQ_API_TOKEN only IP addresses, localhost "
            "and the names in SWEEPQ_WEB_ALLOWED_HOSTS are served"
        )


def token_ok(token: str | None) -> bool:
    """True when no token is configured or the request carries it (constant-time compare)."""
    if not token:
        return True
    auth = request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def cross_site_write() -> bool:
    """Whether the current request is a state-changing one a browser sent from another site's
    page: ``Sec-Fetch-Site: cross-site``, or an ``Origin`` (``null`` included) whose host is
    not the request's Host. A request without ``Origin`` is not (curl, scripts)."""
    if request.method in SAFE_METHODS:
        return False
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return origin == "null" or urlparse(origin).netloc.lower() != (request.host or "").lower()


def api_guard(token: str | None) -> Response | None:
    """The refusal of an ``/api`` request, or None to serve it: a cross-site write (403) before
    a missing or wrong token (401, with ``WWW-Authenticate``)."""
    if cross_site_write():
        return error(403, "cross-site request refused (the Origin is not this server)")
    if not token_ok(token):
        resp = error(401, "missing or wrong API token (send Authorization: Bearer <SWEEPQ_API_TOKEN>)")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="sweepq"'
        return resp
    return None


def install(app: Flask, *, token: str | None, allowed_hosts: Iterable[str], trusted_proxies: int) -> None:
    """Put the app-wide checks on ``app``: ProxyFix for ``trusted_proxies`` proxies (0: none),
    the Host policy before every request, the body cap, and the security headers on every
    answer. ``trusted_proxies`` is checked with :func:`parse_trusted_proxies` (ValueError)."""
    proxies = parse_trusted_proxies(trusted_proxies)
    if proxies:
        # the proxy's view of the request (Host, scheme, client address) replaces the socket's,
        # so the Host and Origin checks see what the browser sent
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )
    policy = HostPolicy(allowed_hosts, bool(token))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.before_request
    def _check_host() -> Response | None:
        """Refuse Host names a DNS-rebinding page could use (421)."""
        host = request.host or ""
        return None if policy.allows(host) else error(421, policy.refusal(host))

    @app.errorhandler(413)
    def _too_large(exc: HTTPException) -> Response:
        return error(413, f"request body over {MAX_BODY} bytes; a sweep config is far smaller")

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
