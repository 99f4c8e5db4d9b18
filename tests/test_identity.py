"""Who is a client and who is a user is not up to the client (issue 11 §4, §5).

  * X-Forwarded-For is believed only from the configured proxy: nginx, from its
    own source address. Anything else on the host that reaches a gateway
    directly counts as its TCP peer; simulated clients connect FROM their own
    loopback addresses (seckill.measure.clients), as a real crowd would.
  * One product, one URL: only the canonical product id (211, not 0211).
  * One user, one id: surrounding white space dropped and Unicode NFC applied
    before the limits, the reservation and the database.
  * A sale time without a zone is refused.

Every example of the issue runs over HTTP on every tier where it applies.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from seckill.measure import invariants
from seckill.system import tiers
from seckill.measure.clients import client_address, post_json
from seckill.config import NGINX_SOURCE
from seckill.system.gateway import TrustedProxies, canonical_user_id, client_ip, parse_request
from seckill.system.sale import SaleError, create_sale, parse_time

from conftest import BURST_LIMITS

IP_LIMIT = 10
LIMITS = {**BURST_LIMITS, "ip_limit": IP_LIMIT, "user_limit": 1000, "window_s": 30.0}


def buy(base: str, product: int, user: str, source: str | None = None, forwarded: str | None = None):
    status, body, _ = post_json(f"{base}/api/seckill/{product}", {"user_id": user}, source=source,
                                headers={"X-Forwarded-For": forwarded} if forwarded else None)
    return status, json.loads(body or b"{}")


# -- pure rules ----------------------------------------------------------------------------------

def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    nobody, nginx = TrustedProxies(), TrustedProxies([NGINX_SOURCE])
    assert client_ip("127.0.0.1", "203.0.113.9", nobody) == "127.0.0.1"          # a direct peer chooses nothing
    assert client_ip("127.0.0.1", "203.0.113.9", nginx) == "127.0.0.1"           # loopback is not nginx
    assert client_ip(NGINX_SOURCE, "203.0.113.9", nginx) == "203.0.113.9"
    assert client_ip(NGINX_SOURCE, "1.1.1.1, 127.9.0.7", nginx) == "127.9.0.7"   # right-most: what nginx saw
    assert client_ip(NGINX_SOURCE, "garbage", nginx) == NGINX_SOURCE
    loadtest = TrustedProxies([NGINX_SOURCE], loopback=True)                     # the explicit switch
    assert client_ip("127.0.0.1", "10.0.0.7", loadtest) == "10.0.0.7"
    assert client_ip(NGINX_SOURCE, "10.0.0.7, 127.0.0.1", loadtest) == "10.0.0.7"
    assert "127.0.0.1" not in TrustedProxies(["10.0.0.0/8"]) and "10.2.3.4" in TrustedProxies(["10.0.0.0/8"])


def test_simulated_clients_have_loopback_addresses_of_their_own():
    addresses = {client_address(i) for i in range(70_000)}
    assert len(addresses) == 70_000
    assert all(a.startswith("127.") and not a.startswith("127.0.") for a in addresses)


@pytest.mark.parametrize("raw,canonical", [("0211", None), ("211", 211), ("+211", None), ("00", None),
                                           ("0", None), ("2" * 18, int("2" * 18))])
def test_only_the_canonical_product_id_is_accepted(raw, canonical):
    product_id, _user, problem = parse_request(raw, b'{"user_id": "u"}')
    assert product_id == canonical
    if canonical is None:
        assert problem.status == 404 and problem.body["error"] == "unknown_product"
    if raw == "0211":
        assert "211" in problem.body["message"] and "leading zero" in problem.body["message"]


@pytest.mark.parametrize("raw", ["caf\u00e9", "cafe\u0301", " caf\u00e9", "caf\u00e9\t", "\u3000cafe\u0301 "])
def test_one_visible_name_is_one_user_id(raw):
    assert canonical_user_id(raw) == "caf\u00e9"
    _p, user, problem = parse_request("1", json.dumps({"user_id": raw}).encode())
    assert problem is None and user == "caf\u00e9"


def test_a_sale_time_without_a_zone_is_refused():
    with pytest.raises(SaleError, match="no time zone"):
        parse_time("2030-01-01T00:00:00", "--starts-at")
    assert parse_time("2030-01-01T00:00:00Z", "--starts-at").utcoffset().total_seconds() == 0
    assert parse_time("2030-01-01T08:00:00+08:00", "x").timestamp() == parse_time("2030-01-01T00:00:00Z", "x").timestamp()


def test_the_cli_refuses_a_zoneless_start_in_one_line_before_starting_anything(tmp_path):
    seckill = Path(sys.executable).parent / "seckill"
    done = subprocess.run([str(seckill), "sale", "create", "--product", "5", "--stock", "1",
                           "--starts-at", "2030-01-01T00:00:00"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "no time zone" in lines[0] and "Traceback" not in done.stderr, done.stderr


# -- over HTTP, on every tier where it applies --------------------------------------------------------

@pytest.fixture(scope="module", params=["db-direct", "flask", "flask-x4", "fastapi", "local-stock"])
def tier(request, stack_urls):
    state = tiers.up(request.param, limits=LIMITS, out=None)
    yield state
    tiers.down(out=None)


def limited_tier(tier):
    if tier["tier"] == "db-direct":
        pytest.skip("db-direct has no limits: the load goes straight to the database")
    return tier


def test_a_forged_forwarded_for_does_not_escape_the_ip_limit(s, tier):
    base, product = limited_tier(tier)["base_url"], 9601
    create_sale(s, product, 1000, force=True)
    rng = random.Random(11)
    me = None  # the host's own 127.0.0.1: the address the gateways trusted by default before
    statuses = [buy(base, product, f"forger-{i}", source=me,
                    forwarded=f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.1")[0]
                for i in range(3 * IP_LIMIT)]
    assert statuses.count(200) <= 2 * IP_LIMIT and statuses.count(429) >= IP_LIMIT, statuses  # at most one window turn


def test_a_forged_forwarded_for_cannot_push_a_neighbour_over_the_limit(s, tier):
    base, product = limited_tier(tier)["base_url"], 9602
    create_sale(s, product, 1000, force=True)
    victim = "127.9.0.3"
    for i in range(IP_LIMIT + 1):
        buy(base, product, f"framer-{i}", source=None, forwarded=victim)
    status, body = buy(base, product, "victim-0", source=victim)
    assert status == 200, body


def test_distinct_source_addresses_are_distinct_clients(s, tier):
    base, product = limited_tier(tier)["base_url"], 9603
    create_sale(s, product, 1000, force=True)
    statuses = [buy(base, product, f"crowd-{i}", source=client_address(9000 + i))[0] for i in range(3 * IP_LIMIT)]
    assert statuses == [200] * (3 * IP_LIMIT)


def test_a_gateway_behind_nginx_believes_nobody_but_nginx(s, tier):
    if tier["tier"] != "flask-x4":
        pytest.skip("only flask-x4 has gateways behind nginx")
    product = 9604
    create_sale(s, product, 1000, force=True)
    behind = f"http://127.0.0.1:{s.ports.gateway + 1}"  # one of the four, reached directly
    statuses = [buy(behind, product, f"sneak-{i}", source="127.9.0.4", forwarded=f"10.1.0.{i}")[0]
                for i in range(2 * IP_LIMIT)]
    assert statuses.count(429) >= IP_LIMIT - 1, statuses


def test_a_product_has_one_url(s, tier):
    base, product = tier["base_url"], 211
    create_sale(s, product, 5, force=True)
    status, body = buy(base, "0211", "zero-padded", source="127.9.1.1")
    assert status == 404 and body["error"] == "unknown_product" and "211" in body["message"], body
    if tier["tier"] != "db-direct":  # the only tier without a stock endpoint
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/api/sales/0211", timeout=10)
        assert err.value.code == 404
    assert buy(base, product, "canonical", source="127.9.1.2")[0] == 200


def test_one_visible_name_buys_once(s, tier):
    base, product = tier["base_url"], 9605
    create_sale(s, product, 5, force=True)
    # addresses of this tier's own: the per-IP counters outlive a tier (30 s window, one Redis)
    at = ["db-direct", "flask", "flask-x4", "fastapi", "local-stock"].index(tier["tier"])
    first = buy(base, product, "caf\u00e9", source=f"127.9.{2 + at}.1")
    assert first[0] == 200, first
    for spelling in ("cafe\u0301", " caf\u00e9 ", "caf\u00e9\n"):
        status, body = buy(base, product, spelling, source=f"127.9.{2 + at}.2")
        assert (status, body.get("error")) == (409, "already_bought"), (spelling, body)
    if tier["tier"] != "db-direct":
        assert invariants.wait_for_drain(s, product, expected_orders=1, timeout_s=30)
        assert invariants.check_sale(s, product, {first[1]["order_id"]}).ok
    assert invariants.order_count(s, product) == 1


def test_the_admin_api_refuses_a_zoneless_start(s, tier):
    if tier["tier"] != "flask":
        pytest.skip("the admin endpoint is the Flask tier's")
    status, body, _ = post_json(f"{tier['base_url']}/api/admin/sales",
                                {"product_id": 9607, "stock": 3, "starts_at": "2030-01-01T00:00:00"},
                                headers={"X-Admin-Token": s.admin_token})
    assert status == 422 and b"no time zone" in body


def test_the_load_test_switch_is_off_by_default_and_said_out_loud_when_on(s, stack_urls):
    log = s.run_dir / "logs" / "gateway.log"
    create_sale(s, 9608, 1000, force=True)
    for switch, said in ((None, False), ("1", True)):
        mark = log.stat().st_size if log.exists() else 0
        state = tiers.up("fastapi", limits=LIMITS, out=None,
                         extra_env={"SECKILL_LOADTEST_FORWARDED": switch} if switch else None)
        try:
            forged = [buy(state["base_url"], 9608, f"lt-{switch}-{i}", forwarded=f"10.7.0.{i}")[0]
                      for i in range(IP_LIMIT + 2)]
        finally:
            tiers.down(out=None)
        with open(log, "rb") as fh:
            fh.seek(mark)
            started = fh.read().decode(errors="replace")
        assert ("LOAD-TEST MODE" in started) == said, started[-500:]
        assert (429 in forged) != said, forged  # believed only with the switch on
