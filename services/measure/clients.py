"""Simulated clients with addresses of their own: source addresses in 127.0.0.0/8.

The gateways count the per-IP limit against the TCP peer (they believe
X-Forwarded-For only from nginx, see gateway.TrustedProxies). A load generator
on this machine that wants to look like many clients therefore does what a
real crowd does: each simulated client connects FROM its own address. On Linux
every address of 127.0.0.0/8 is local, so a socket can bind 127.A.B.C without
any set-up or privilege.

``client_address(i)`` is the i-th simulated client's address. It never is
127.0.0.1 (the host itself) nor anything in 127.0.x.x (config.NGINX_SOURCE
lives there): the first octet after 127 runs from 1 to 250, which gives
250 × 65,536 distinct clients.

Generators that cannot bind a source address per client (wrk, locust's
FastHttpUser) send X-Forwarded-For instead, and need the gateway's explicit
load-test switch (``seckill tier up NAME --load-test``).
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

CLIENTS = 250 * 65536


def client_address(i: int) -> str:
    """The i-th simulated client's own loopback address (127.1.0.0 for i = 0)."""
    i %= CLIENTS
    return f"127.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def is_bindable(address: str) -> bool:
    """True for an address this machine can connect from (a loopback IPv4 address)."""
    import ipaddress

    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


class SourceSessions:
    """One aiohttp session per source address (a connector binds one local address).

    A client's connection is kept alive for ``keepalive_s`` only (shorter than the
    gateways' 5 s): thousands of simulated clients must not leave thousands of idle
    connections on a gateway, and a client must close first, so it never reuses a
    connection the server is closing. Close with ``await close()``.
    """

    def __init__(self, timeout=None, per_source: int = 100, keepalive_s: float = 2.0):
        self.timeout = timeout
        self.per_source = per_source
        self.keepalive_s = keepalive_s
        self._sessions: dict[str, object] = {}

    def get(self, address: str):
        import aiohttp

        session = self._sessions.get(address)
        if session is None:
            if not is_bindable(address):
                raise ValueError(f"{address!r} is not a loopback address this machine can connect from")
            connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=self.per_source,
                                             keepalive_timeout=self.keepalive_s)
            session = self._sessions[address] = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def post_json(url: str, data: dict, source: str | None = None, timeout_s: float = 10.0,
              headers: dict | None = None) -> tuple[int, bytes, dict]:
    """One blocking POST from ``source`` (a loopback address; None: the default one).

    Returns (status, body, headers); raises OSError when nothing answered.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s,
                                      source_address=(source, 0) if source else None)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=json.dumps(data).encode(),
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()
