"""seckill.system.fastjson: orjson on (SECKILL_FAST_JSON=1) gives what the standard library gives.

The switch is only a fair speed-up if nothing else changes: the same bytes on the
wire and in the queue, the same verdict (and message) for every bad body. No
servers needed: the module is reloaded with the variable off and on, and the
gateway's own parse_user / pending_marker are called through it.
"""

from __future__ import annotations

import importlib
import json

import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from starlette.responses import JSONResponse

from seckill.system import fastjson, gateway
from seckill.system.gateway_fastapi import respond


@pytest.fixture
def engines(monkeypatch):
    """{"off": (dumps, loads), "on": (dumps, loads)}, each as the module builds it from the variable."""
    built = {}
    for side, value in (("off", "0"), ("on", "1")):
        monkeypatch.setenv(fastjson.ENV, value)
        module = importlib.reload(fastjson)
        built[side] = (module.dumps, module.loads)
    monkeypatch.delenv(fastjson.ENV)
    yield built
    importlib.reload(fastjson)  # as the environment says again


def parse_both(monkeypatch, body: bytes) -> dict:
    """parse_user's answer for ``body`` with fastjson off and on: (user_id, status, error code, message)."""
    seen = {}
    for side, value in (("off", "0"), ("on", "1")):
        monkeypatch.setenv(fastjson.ENV, value)
        importlib.reload(fastjson)
        user_id, problem = gateway.parse_user(body)
        seen[side] = (user_id, problem and (problem.status, problem.body["error"], problem.body["message"]))
    monkeypatch.delenv(fastjson.ENV)
    importlib.reload(fastjson)
    return seen


def test_the_variable_picks_the_engine(monkeypatch):
    for value, engine in (("1", "orjson"), ("on", "orjson"), ("0", "json"), ("off", "json"), (" No ", "json")):
        monkeypatch.setenv(fastjson.ENV, value)
        assert importlib.reload(fastjson).ENGINE.startswith(engine), value
    monkeypatch.delenv(fastjson.ENV)
    assert importlib.reload(fastjson).ENGINE.startswith("orjson"), "on unless switched off: it measured faster"


# What the gateway writes: replies, the order message, the pending marker (non-ASCII ids included).
WRITTEN = [
    {"success": True, "order_id": "9234d757-e2f8-41ea-b7f8-3a7f85d43bad"},
    {"error": "sold_out", "message": "sold out"},
    {"error": "rate_limited", "layer": "global", "message": "too many requests, try again"},
    {"order_id": "o-1", "status": "pending", "message": "order sent, its confirmation is late"},
    {"product_id": 211, "stock_left": 0},
    {"order_id": "o-2", "user_id": "café 用户 😀", "product_id": 2**63 - 1, "created_at": "2026-11-30T13:00:00+00:00"},
    {"product_id": 7, "user_id": "u\"quote\\back\nline\x01"},
    {"nested": [1, None, False, {"k": []}], "empty": {}},
]


@pytest.mark.parametrize("obj", WRITTEN)
def test_same_bytes_off_and_on_and_as_starlette_writes_them(engines, obj):
    off, on = engines["off"][0](obj), engines["on"][0](obj)
    assert off == on
    assert off == JSONResponse(obj).body, "off must be exactly what the FastAPI tier wrote before"
    assert json.loads(off) == obj


def test_a_reply_through_the_tier_is_the_same_bytes(engines):
    reply = gateway.Reply(409, {"error": "already_bought", "message": "this user already bought it"})
    assert respond(reply).body == JSONResponse(reply.body, status_code=409).body
    assert respond(reply).status_code == 409 and respond(reply).media_type == "application/json"


def test_the_pending_marker_reads_back_on_both_sides(monkeypatch):
    order = {"order_id": "o-3", "product_id": 42, "user_id": "üser"}
    markers = []
    for value in ("0", "1"):
        monkeypatch.setenv(fastjson.ENV, value)
        importlib.reload(fastjson)
        marker = gateway.pending_marker(order)
        assert json.loads(marker) == {"product_id": 42, "user_id": "üser"}
        assert gateway.still_reserved(marker, lambda p, u: (p, u) == (42, "üser"))
        assert not gateway.still_reserved(marker, lambda p, u: False)
        assert gateway.still_reserved(b"pending", lambda p, u: False), "an old plain marker: nothing to check"
        markers.append(marker)
    monkeypatch.delenv(fastjson.ENV)
    importlib.reload(fastjson)
    assert markers[0] == markers[1]


# Bodies orjson alone would judge differently from the standard library, and the usual bad ones.
BODIES = [
    b'{"user_id": "u1"}',
    '{"user_id": "u1"}'.encode("utf-16"),            # UTF-16 with a BOM: json reads it, orjson does not
    '{"user_id": "u1"}'.encode("utf-16-le"),         # UTF-16 without one
    b'\xef\xbb\xbf{"user_id": "u1"}',                # a UTF-8 byte-order mark
    b'{"user_id": "u1", "x": NaN}',                  # not RFC 8259, but json reads it
    b'{"user_id": "u1", "x": -Infinity}',
    b'{"user_id": "u1", "x": 1e400}',
    b'{"user_id": "a", "user_id": "b"}',             # a duplicate key: the last one wins
    b'{"user_id": "u1", "x": 18446744073709551616}',  # beyond 64 bits
    b'{"user_id": "\\ud800"}',                       # a lone surrogate: 422, not 400
    b'{"user_id": "\\ud83d\\ude00"}',                # a surrogate pair: one emoji
    '{"user_id": "caf\xe9"}'.encode("latin-1"),      # not UTF-8
    b'\xff\xfe{"user_id": "u"}',
    b'{"user_id": "u\x00"}', b'{"user_id": "a\\u0000b"}',
    b"", b"not json", b'{"user_id": "a"', b'{"user_id": "u1"} trailing', b'["user_id", "a"]', b'"u1"',
    b"[" * 500 + b"]" * 500, b"[" * 1500, b'{"a":[' * 600,  # deep nesting
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_every_body_gets_the_same_answer_off_and_on(monkeypatch, body):
    seen = parse_both(monkeypatch, body)
    assert seen["on"] == seen["off"], body[:60]


def test_too_deep_nesting_is_a_400_not_a_crash(monkeypatch):
    # json.loads raises RecursionError (not a ValueError) past ~1,000 levels: once a 500
    for body in (b"[" * 1500, b"[" * 1500 + b"]" * 1500, b'{"a":[' * 600):
        seen = parse_both(monkeypatch, body)
        assert seen["off"][1][:2] == (400, "invalid_json") and seen["on"] == seen["off"]
    # Between the standard library's depth limit (~1,000, less the caller's stack) and orjson's
    # (1,024) a valid array is "not JSON" off and "not an object" on: refused either way.
    seen = parse_both(monkeypatch, b"[" * 1010 + b"]" * 1010)
    assert seen["off"][1][:2] == (400, "invalid_json") and seen["on"][1][:2] == (422, "invalid_body")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@hsettings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(JSON_VALUES)
def test_any_value_is_written_alike_and_read_back(obj):
    try:
        off = fastjson._std_dumps(obj)
    except UnicodeEncodeError:  # a lone surrogate in a str: neither side can write it
        with pytest.raises(TypeError):
            orjson.dumps(obj)
        return
    assert orjson.dumps(obj) == off
    assert orjson.loads(off) == json.loads(off) == obj


@hsettings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=64) | st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(max_size=40))
       | st.builds(lambda o: json.dumps(o).encode(), JSON_VALUES))
def test_any_body_gets_the_same_answer_off_and_on(body):
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = parse_both(monkeypatch, body)
    assert seen["on"] == seen["off"], body
