"""A TCP proxy for fault tests: forwards every connection to a listening port on to a target.

    python tcp_proxy.py --listen 127.0.0.1:0 --target 127.0.0.1:6379

Prints ``listening PORT`` once it accepts connections. Why it exists: stopped with SIGSTOP it
holds every connection open and moves no byte, so a client behind it (a worker talking to
Redis) sees its connection hang with no error, as behind a frozen NAT or a stalled network,
while other clients of the same Redis go on. One thread and one ``select`` loop, so a stop
freezes every connection at once; SIGCONT lets them go on where they were.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    sel = selectors.DefaultSelector()
    server = socket.create_server(listen)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    print(f"listening {server.getsockname()[1]}", flush=True)
    peers: dict[socket.socket, socket.socket] = {}

    def close(s: socket.socket) -> None:
        """Close a connection's both ends; a no-op for an end closed already (both ends of a
        pair can be ready in one select, and the first to be handled closes the other)."""
        for x in (s, peers.pop(s, None)):
            if x is not None and x.fileno() != -1:
                peers.pop(x, None)
                sel.unregister(x)
                x.close()

    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock.fileno() == -1:  # closed with its peer earlier in this batch
                continue
            if key.data is None:  # a new client: connect it to the target
                client, _ = server.accept()
                try:
                    upstream = socket.create_connection(target, timeout=5)
                except OSError:
                    client.close()
                    continue
                for s in (client, upstream):
                    s.setblocking(True)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(s, selectors.EVENT_READ, "conn")
                peers[client], peers[upstream] = upstream, client
                continue
            try:
                data = sock.recv(1 << 16)
                if data:
                    peers[sock].sendall(data)  # small messages (Redis commands): blocking is fine
                    continue
            except OSError:
                pass
            close(sock)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to accept on (port 0: any free one)")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    args = ap.parse_args(argv)
    try:
        serve(_addr(args.listen), _addr(args.target))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
