"""Every bad request gets a clear 4xx (never a 500), and reserves nothing.

Most cases go through the running Flask tier over HTTP. Limits and dead
dependencies are tried on a gateway built in-process (Flask's test client)
with tight limits or with a broker / Redis address where nothing listens:
real services, real failures, no mocks.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
import redis

from seckill.system import gateway
from seckill.measure import invariants
from seckill.config import NGINX_SOURCE, Limits
from seckill.system.gateway_flask import create_app
from seckill.system.sale import create_sale

PRODUCT = 301


def post(base_url: str, path: str, body: bytes, headers: dict | None = None, method: str = "POST"):
    req = urllib.request.Request(base_url + path, data=body if method == "POST" else None, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


@pytest.fixture
def sale(s, flask_tier):
    create_sale(s, PRODUCT, 5)
    yield flask_tier["base_url"]
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    assert r.get(f"stock:{PRODUCT}") == "5", "a rejected request reserved stock"
    assert r.scard(f"buyers:{PRODUCT}") == 0, "a rejected request recorded a buyer"
    assert invariants.order_count(s, PRODUCT) == 0


BAD_REQUESTS = [
    # (path, body, status, error code)
    (f"/api/seckill/{PRODUCT}", b"not json", 400, "invalid_json"),
    (f"/api/seckill/{PRODUCT}", b"", 400, "invalid_json"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "a"', 400, "invalid_json"),
    (f"/api/seckill/{PRODUCT}", b'["user_id", "a"]', 422, "invalid_body"),
    (f"/api/seckill/{PRODUCT}", b"{}", 422, "missing_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": null}', 422, "missing_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": ""}', 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "   "}', 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", json.dumps({"user_id": "x" * 65}).encode(), 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": 42}', 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": ["a"]}', 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "a\\u0000b"}', 422, "invalid_user_id"),
    (f"/api/seckill/{PRODUCT}", json.dumps({"user_id": "u", "pad": "x" * 10_000}).encode(), 413, "body_too_large"),
    ("/api/seckill/abc", b'{"user_id": "u1"}', 404, "unknown_product"),
    ("/api/seckill/1.5", b'{"user_id": "u1"}', 404, "unknown_product"),
    ("/api/seckill/-1", b'{"user_id": "u1"}', 404, "unknown_product"),
    ("/api/seckill/99999999999999999999", b'{"user_id": "u1"}', 404, "unknown_product"),
    ("/api/seckill/424242", b'{"user_id": "u1"}', 404, "unknown_product"),
    ("/api/seckill/", b'{"user_id": "u1"}', 404, "not_found"),
    # odd unicode and odd ids (test_fuzz_api.py generates many more of these)
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "\\ud800"}', 422, "invalid_user_id"),   # a lone surrogate
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "\\u202eevil"}', 422, "invalid_user_id"),  # right-to-left override
    (f"/api/seckill/{PRODUCT}", b'{"user_id": "a\\u200bb"}', 422, "invalid_user_id"),   # zero-width space
    (f"/api/seckill/{PRODUCT}", b'\xff\xfe{"user_id": "u"}', 400, "invalid_json"),       # not UTF-8
    ("/api/seckill/%EF%BC%91", b'{"user_id": "u1"}', 404, "unknown_product"),            # a full-width digit
    ("/api/seckill/9223372036854775808", b'{"user_id": "u1"}', 404, "unknown_product"),  # above BIGINT
    ("/api/seckill/0", b'{"user_id": "u1"}', 404, "unknown_product"),
]


@pytest.mark.parametrize("path,body,status,code", BAD_REQUESTS,
                         ids=[f"{c}-{i}" for i, (_, _, _, c) in enumerate(BAD_REQUESTS)])
def test_bad_request_is_a_clear_4xx_and_reserves_nothing(sale, path, body, status, code):
    got_status, got_body, _ = post(sale, path, body)
    assert (got_status, got_body.get("error")) == (status, code), got_body
    assert got_body.get("message"), "every error carries a message for the user"


def test_wrong_method_is_405(sale):
    status, body, _ = post(sale, f"/api/seckill/{PRODUCT}", b"", method="GET")
    assert status == 405 and body["error"] == "method_not_allowed"


def test_unknown_order_is_404(sale):
    for order_id in ("nope", "00000000-0000-0000-0000-000000000000"):
        status, body, _ = post(sale, f"/api/orders/{order_id}", b"", method="GET")
        assert status == 404 and body["error"] == "unknown_order"


def test_sale_not_started_and_sale_over(s, flask_tier):
    now = datetime.now(timezone.utc)
    create_sale(s, 302, 5, starts_at=now + timedelta(hours=1))
    create_sale(s, 303, 5, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1))
    for product, code in ((302, "sale_not_started"), (303, "sale_ended")):
        status, body, _ = post(flask_tier["base_url"], f"/api/seckill/{product}", b'{"user_id": "early"}')
        assert (status, body["error"]) == (422, code)
        assert redis.Redis.from_url(s.redis_url).get(f"stock:{product}") == b"5"


def test_admin_endpoint_creates_a_sale_and_refuses_bad_input(s, flask_tier):
    base = flask_tier["base_url"]
    status, body, _ = post(base, "/api/admin/sales", b'{"product_id": 304, "stock": 7}')
    assert status == 403
    token = {"X-Admin-Token": s.admin_token}
    status, body, _ = post(base, "/api/admin/sales", b'{"product_id": 304, "stock": -7}', token)
    assert status == 422 and "stock" in body["message"]
    status, body, _ = post(base, "/api/admin/sales", b'{"product_id": 304, "stock": 7}', token)
    assert status == 201 and body["stock"] == 7
    assert redis.Redis.from_url(s.redis_url).get("stock:304") == b"7"


# -- in-process gateways: tight limits, dead dependencies --------------------------------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_for(s, limits: Limits | None = None, **ports):
    s2 = dataclasses.replace(s, ports=dataclasses.replace(s.ports, **ports))
    return create_app(gateway.build(s2, limits=limits or s.limits), s=s2).test_client()


def test_user_limit_answers_429_with_retry_after(s, stack_urls, redis_client):
    create_sale(s, 305, 100, redis=redis_client)
    client = client_for(s, Limits(user_limit=2, ip_limit=100, window_s=10))
    answers = [client.post("/api/seckill/305", json={"user_id": "spammer"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 409, 429, 429]
    assert answers[2].json["layer"] == "user"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 10
    other = client.post("/api/seckill/305", json={"user_id": "someone-else"})
    assert other.status_code == 200, "one user's limit must not block others"


def test_ip_limit_counts_the_forwarded_client_address_only_from_the_proxy(s, stack_urls, redis_client):
    create_sale(s, 306, 100, redis=redis_client)
    behind_nginx = dataclasses.replace(s, trusted_proxies=(NGINX_SOURCE,))
    client = create_app(gateway.build(behind_nginx, limits=Limits(user_limit=100, ip_limit=3, window_s=10)),
                        s=behind_nginx).test_client()
    nginx = {"REMOTE_ADDR": NGINX_SOURCE}
    codes = [client.post("/api/seckill/306", json={"user_id": f"u{i}"}, environ_base=nginx,
                         headers={"X-Forwarded-For": "203.0.113.9"}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert client.post("/api/seckill/306", json={"user_id": "u9"}, environ_base=nginx,
                       headers={"X-Forwarded-For": "203.0.113.10"}).status_code == 200
    # the same header from anyone else on the host is not believed: it counts as its peer
    codes = [client.post("/api/seckill/306", json={"user_id": f"w{i}"}, environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-For": f"203.0.113.{20 + i}"}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_global_token_bucket_answers_429(s, stack_urls, redis_client):
    create_sale(s, 307, 100, redis=redis_client)
    client = client_for(s, Limits(bucket_capacity=2, bucket_rate=0.01))
    codes = [client.post("/api/seckill/307", json={"user_id": f"b{i}"}).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]


def test_broker_down_answers_503_and_rolls_the_reservation_back(s, stack_urls, redis_client):
    create_sale(s, 308, 10, redis=redis_client)
    client = client_for(s, amqp=closed_port())
    t0 = time.monotonic()
    answer = client.post("/api/seckill/308", json={"user_id": "unlucky"})
    assert answer.status_code == 503 and answer.json["error"] == "unavailable"
    assert answer.headers.get("Retry-After")
    assert time.monotonic() - t0 < 5, "a dead broker must fail fast, not hang"
    assert redis_client.get("stock:308") == "10", "the reservation leaked"
    assert not redis_client.sismember("buyers:308", "unlucky")


def test_redis_down_answers_503_at_once(s, stack_urls):
    client = client_for(s, redis=closed_port())
    t0 = time.monotonic()
    answer = client.post("/api/seckill/308", json={"user_id": "u"})
    assert answer.status_code == 503 and answer.json["error"] == "unavailable"
    assert time.monotonic() - t0 < 5
