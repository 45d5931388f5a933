"""A small reverse proxy that forwards every request as nginx or Traefik in front of ``sweepq web``
would: the client's address, scheme, Host and port go upstream as ``X-Forwarded-For``,
``-Proto``, ``-Host`` and ``-Port``, and the upstream ``Host`` is either the client's
(``--keep-host``: nginx's ``proxy_set_header Host $host``, Traefik's default) or the upstream's own
address (nginx's default ``proxy_pass`` behaviour).

    python reverse_proxy.py --port 0 --upstream 127.0.0.1:8080 --proto https [--keep-host]

It prints ``listening on PORT`` once it accepts connections. A test stand-in for a TLS
terminator: it speaks plain HTTP to the client and *claims* ``--proto`` upstream.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}


def make_handler(upstream: str, proto: str, keep_host: bool) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            client_host = self.headers.get("Host", "")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = client_host if keep_host else upstream
            prior = self.headers.get("X-Forwarded-For")
            headers["X-Forwarded-For"] = (
                f"{prior}, {self.client_address[0]}" if prior else self.client_address[0]
            )
            headers["X-Forwarded-Proto"] = proto
            headers["X-Forwarded-Host"] = client_host
            port = client_host.rsplit(":", 1)[1] if ":" in client_host.rsplit("]", 1)[-1] else None
            headers["X-Forwarded-Port"] = port or ("443" if proto == "https" else "80")
            conn = http.client.HTTPConnection(upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
            pass

    return Proxy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="host:port of sweepq web")
    ap.add_argument("--proto", default="https", choices=["http", "https"])
    ap.add_argument("--keep-host", action="store_true")
    args = ap.parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(args.upstream, args.proto, args.keep_host)
    )
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
