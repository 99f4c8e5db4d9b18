"""Fuzz the HTTP API of the FastAPI tier and the Flask tier with the same generated requests.

Two generators, both bounded (a fixed number of examples, drawn once with a
fixed seed, so a failure reproduces):
  * schemathesis reads the FastAPI tier's OpenAPI schema and makes requests that
    fit it (positive) and that break it (negative: wrong types, missing fields,
    out-of-range strings); schemathesis' own checks judge each answer: not a
    server error, a documented status, a body that matches the documented schema;
  * our own hypothesis strategies add what a schema cannot express: bodies that
    are not JSON at all, truncated JSON, huge bodies, odd unicode, odd
    X-Forwarded-For headers, negative / huge / non-ASCII-digit product ids,
    unknown products, a sale not started and a sale over.
The very same requests then go to the Flask tier. Every answer must be a 4xx
with a JSON message (or a real purchase from the one open sale), never a 500,
and afterwards the books must balance: Redis lost exactly the items that were
sold, PostgreSQL holds exactly the orders users were told about, the sales
that were not open sold nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode

from seckill.measure import invariants
from seckill.system import fastjson, tiers
from seckill.system.gateway_fastapi import create_app
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS

OPEN, SOON, OVER, UNKNOWN = 9401, 9402, 9403, 9404
STOCK = 1000
# Wide limits: the fuzzer comes from one address and reuses user ids; limits have tests of their own.
FUZZ_LIMITS = {**BURST_LIMITS, "user_limit": 100_000, "ip_limit": 100_000}


def draw(strategy, n: int) -> list:
    """``n`` examples of ``strategy``, the same ones on every run (derandomized, no database)."""
    drawn: list = []

    @hsettings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        drawn.append(example)

    collect()
    return drawn


# -- schemathesis: cases from the FastAPI tier's OpenAPI schema --------------------------------------

def schema_cases() -> list:
    """Positive and negative cases for every operation; buys also aimed at the three sales."""
    schema = schemathesis.openapi.from_dict(create_app().openapi())
    cases = []
    for path, method, n in (("/api/seckill/{product_id}", "POST", 40), ("/api/orders/{order_id}", "GET", 15),
                            ("/api/sales/{product_id}", "GET", 15), ("/healthz", "GET", 3)):
        operation = schema[path][method]
        for mode in GenerationMode:
            if mode is GenerationMode.NEGATIVE and method == "GET":
                continue  # any string is a valid path segment: a GET of ours has no invalid form
            cases += draw(operation.as_strategy(generation_mode=mode), n)
            if method == "POST":
                for product in (OPEN, SOON, OVER):
                    cases += draw(operation.as_strategy(generation_mode=mode,
                                                        path_parameters={"product_id": str(product)}), 10)
    return cases


# -- our strategies: what no schema describes ----------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """One raw HTTP request: the product path segment (unencoded), body bytes, headers."""
    product: str
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def send(self, session: requests.Session, base_url: str) -> requests.Response:
        return session.post(f"{base_url}/api/seckill/{quote(self.product, safe='')}", data=self.body,
                            headers=dict(self.headers), timeout=15)


ODD_TEXT = st.text(st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "C"],
                                 exclude_characters="\x00"), max_size=80)
ODD_USER = st.one_of(
    st.text(st.characters(categories=["L", "N", "So", "Pd"]), min_size=1, max_size=64),  # may buy
    ODD_TEXT,
    st.sampled_from(["\u202eevil", "a\u200bb", "\U0001F600" * 16, "\U0001F600" * 17, "ﬀ", "\ud800",
                     "e\u0301" * 40, " ", "\t", "u\nser", "\x7f", "NULL", "' OR 1=1 --", "<script>"]),
    st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
                           max_leaves=8)


@st.composite
def bodies(draw_) -> bytes:
    kind = draw_(st.sampled_from(["user", "user", "user", "json", "bytes", "truncated", "huge"]))
    if kind == "user":
        extra = draw_(st.dictionaries(st.sampled_from(["pad", "qty", "user"]), JSON_VALUES, max_size=2))
        return json.dumps({"user_id": draw_(ODD_USER), **extra}).encode()
    if kind == "json":
        return json.dumps(draw_(JSON_VALUES)).encode()
    if kind == "bytes":
        return draw_(st.binary(max_size=300))
    if kind == "truncated":
        whole = json.dumps({"user_id": draw_(ODD_TEXT)}).encode()
        return whole[:draw_(st.integers(0, max(0, len(whole) - 1)))]
    size = draw_(st.sampled_from([4097, 10_000, 60_000]))
    return json.dumps({"user_id": "u", "pad": "x" * size}).encode()


KNOWN = st.sampled_from([str(OPEN), str(OPEN), str(SOON), str(OVER), str(UNKNOWN)])
PRODUCTS = st.one_of(
    KNOWN, KNOWN, KNOWN,  # most requests aim at a real sale, so the body checks behind the sale check run
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "00", "-0", "+1", "1.5", "1e3", " 1", "1 ", "٣", "１２", "0x10", "9" * 18, "9" * 19,
                     f"{OPEN}\x00", f"{OPEN}/x", "..", "%2e", "NaN"]),
    ODD_TEXT.filter(lambda s: s not in ("", ".", "..")),
)
HEADERS = st.tuples(
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    st.sampled_from([None, "203.0.113.5", "garbage", "::1", "1.2.3.4, 5.6.7.8", "999.1.1.1", "127.0.0.1", ""]),
).map(lambda h: tuple((k, v) for k, v in (("Content-Type", h[0]), ("X-Forwarded-For", h[1])) if v is not None))


def raw_cases() -> list[Raw]:
    return draw(st.builds(Raw, PRODUCTS, bodies(), HEADERS), 200)


@pytest.fixture(scope="module")
def generated():
    """Drawn once for both tiers, so the Flask tier gets exactly the FastAPI tier's requests."""
    return schema_cases(), raw_cases()


# -- the run, per tier ------------------------------------------------------------------------

@pytest.fixture(params=["fastapi", "flask", "fastapi+std-json"])
def tier(request, s, stack_urls):
    name, _, std = request.param.partition("+")  # fastapi+std-json: with the standard library, not orjson (fastjson.py)
    state = tiers.up(name, limits=FUZZ_LIMITS, out=None, extra_env={fastjson.ENV: "0"} if std else None)
    now = datetime.now(timezone.utc)
    create_sale(s, OPEN, STOCK, force=True)
    create_sale(s, SOON, STOCK, starts_at=now + timedelta(hours=1))
    create_sale(s, OVER, STOCK, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1))
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    r.delete(f"stock:{UNKNOWN}", f"sale:{UNKNOWN}", f"buyers:{UNKNOWN}")
    yield state
    tiers.down(out=None)


class Ledger:
    """What the fuzzer bought: every 200 must be a purchase from the open sale."""

    def __init__(self):
        self.order_ids: set[str] = set()
        self.problems: list[str] = []
        self.seen: set[str] = set()  # error codes answered, to prove the cases reached every check

    def judge(self, what: str, response: requests.Response, product: str | None) -> None:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            self.problems.append(f"{what}: {status} with a non-JSON body {response.text[:80]!r}")
            return
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            self.seen.add(body["error"])
        if status >= 500:
            self.problems.append(f"{what}: server error {status} {body}")
        elif status == 200 and product is not None:
            if product != str(OPEN) or not (body.get("success") and body.get("order_id")):
                self.problems.append(f"{what}: 200 for product {product!r}: {body}")
            else:
                self.order_ids.add(body["order_id"])
        elif status != 200 and not (isinstance(body, dict) and isinstance(body.get("message"), str)
                                    and body["message"] and isinstance(body.get("error"), str)):
            self.problems.append(f"{what}: {status} without an error and a message: {body}")


def test_fuzzed_requests_get_clear_4xx_and_lose_nothing(generated, tier, s):
    schema_requests, raw_requests = generated
    base = tier["base_url"]
    ledger = Ledger()
    session = requests.Session()
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    for case in schema_requests:
        response = case.call(base_url=base, session=session, timeout=15)
        try:
            case.validate_response(response, checks=checks)
        except (Failure, FailureGroup, AssertionError) as failure:  # the message carries a curl line
            ledger.problems.append(f"schemathesis ({tier['tier']}): {str(failure)[:600]}")
        product = case.path_parameters.get("product_id") if case.method == "POST" else None
        ledger.judge(f"{case.method} {case.formatted_path}", response, product and str(product))
    for raw in raw_requests:
        try:
            response = raw.send(session, base)
        except requests.ConnectionError as exc:
            ledger.problems.append(f"no answer to {raw!r:.200}: {exc}")
            continue
        ledger.judge(f"POST {raw.product!r} {raw.body[:60]!r}", response, raw.product)
    assert not ledger.problems, f"{len(ledger.problems)} bad answers on {tier['tier']}:\n" + "\n".join(
        ledger.problems[:15])

    reached = {"invalid_json", "invalid_body", "missing_user_id", "invalid_user_id", "body_too_large",
               "unknown_product", "sale_not_started", "sale_ended", "already_bought", "unknown_order"}
    assert reached <= ledger.seen, f"the cases never reached {sorted(reached - ledger.seen)}"

    # The books: only the open sale sold, and exactly what users were told.
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    for product in (SOON, OVER):
        assert r.get(f"stock:{product}") == str(STOCK) and r.scard(f"buyers:{product}") == 0, product
        assert invariants.order_count(s, product) == 0
    assert r.get(f"stock:{UNKNOWN}") is None and invariants.order_count(s, UNKNOWN) == 0
    assert int(r.get(f"stock:{OPEN}")) == STOCK - len(ledger.order_ids), "a rejected request reserved stock"
    assert r.scard(f"buyers:{OPEN}") == len(ledger.order_ids)
    assert invariants.wait_for_drain(s, OPEN, expected_orders=len(ledger.order_ids), timeout_s=60)
    check = invariants.check_sale(s, OPEN, ledger.order_ids)
    assert check.ok and check.lost == 0 and check.unexpected == 0 and check.rejections == 0, check.as_dict()
    assert ledger.order_ids, "the fuzzer should also have made some valid purchases"


def test_the_fuzzed_schema_is_the_one_the_tier_serves(s, stack_urls):
    state = tiers.up("fastapi", limits=FUZZ_LIMITS, out=None)
    try:
        served = requests.get(f"{state['base_url']}/openapi.json", timeout=10).json()
    finally:
        tiers.down(out=None)
    assert served == create_app().openapi()
    buy = served["paths"]["/api/seckill/{product_id}"]["post"]["responses"]
    assert {"200", "400", "404", "409", "413", "422", "429", "503"} <= set(buy)
    assert buy["422"]["content"]["application/json"]["schema"]["required"] == ["error", "message"]
