"""seckill.measure.results reads back every measurement file: any subset, none, and broken files among them."""

from __future__ import annotations

import json

import pytest

import crafted_results as crafted
from seckill.measure import results


@pytest.fixture
def full(tmp_path):
    return crafted.write_all(tmp_path / "results")


def test_results_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SECKILL_RESULTS_DIR", str(tmp_path / "elsewhere"))
    assert results.results_dir() == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "no-dir"])
def test_nothing_measured_gives_empty_sections(tmp_path, exists):
    directory = tmp_path / "results"
    if exists:
        directory.mkdir()
    m = results.measured(directory)
    assert m == {"cpu_count": None, "tiers": {}, "ceilings": {}, "drain": {}, "confirms": {}, "chaos": {},
                 "bench_source": None}
    assert results.all_records(directory) == []
    assert results.newest("bench", directory) is None


def test_broken_files_are_skipped_not_fatal(full):
    paths = [r["path"] for r in results.all_records(full)]
    assert not any("half-written" in p or "notes.json" in p for p in paths)
    assert len(paths) == 3 + 1 + len(crafted.CHAOS)


def test_kinds_are_recognised_and_newest_first(full):
    records = results.all_records(full)
    kinds = [r["kind"] for r in records]
    assert kinds.count("load") == 3 and kinds.count("bench") == 1 and kinds.count("chaos") == len(crafted.CHAOS)
    whens = [r.get("saved_at") or r["summary"]["started_at"] for r in records]
    assert whens == sorted(whens, reverse=True)
    assert results.newest("chaos", full, scenario="race")["metrics"]["naive_oversold"] == 37
    assert results.newest("chaos", full, scenario="consumer-crash") is None


def test_measured_prefers_the_bench_then_the_newest_load_test(full):
    m = results.measured(full)
    bench_path = str(full / "bench-20251203-111111.json")
    assert m["bench_source"] == bench_path
    assert m["cpu_count"] == 2
    # fastapi is in the bench and in a later load test: the bench (wrk, not client-bound) wins
    assert m["tiers"]["fastapi"]["requests_per_s"] == 9876.4
    assert m["tiers"]["fastapi"]["source"] == bench_path
    # flask is only in load tests: the newest of the two
    assert m["tiers"]["flask"]["requests_per_s"] == 1234.5
    assert m["tiers"]["flask"]["source"].endswith("20251203-101010-flask.json")
    assert m["ceilings"]["redis_lua_ops_per_s"] == 85432.1 and m["ceilings"]["source"] == bench_path
    assert m["drain"]["ratio"] == 8.55
    assert m["chaos"]["mq-down"]["ok"] is False
    assert m["chaos"]["mq-down"]["checks"][0] == {"name": "no order lost", "held": False, "detail": "lost 3"}
    assert m["chaos"]["redis-failover"]["metrics"]["failover_s"] == 11.7


def test_only_load_tests(tmp_path):
    crafted.write(tmp_path, "20251203-101010-flask.json", crafted.LOAD_FLASK)
    m = results.measured(tmp_path)
    assert m["cpu_count"] == 2 and m["ceilings"] == {} and set(m["tiers"]) == {"flask"}
    assert results.figure(m, "t1_rps").value == 1234.5
    assert not results.figure(m, "redis_ops").known


def test_a_hand_edited_bench_does_not_break_measured(tmp_path):
    crafted.write(tmp_path, "bench-x.json", {"kind": "bench", "saved_at": "2025-12-03T00:00:00+00:00",
                                             "tiers": "oops", "ceilings": [1, 2], "machine": None,
                                             "drain": {"batched_orders_per_s": "fast"}})
    m = results.measured(tmp_path)
    assert m["tiers"] == {} and m["ceilings"] == {}
    assert not results.figure(m, "drain_batched").known  # a string is not a measurement


def test_figures_carry_their_source_and_what_to_run(full):
    m = results.measured(full)
    fig = results.figure(m, "redis_ops")
    assert (fig.value, fig.source, fig.how) == (85432.1, str(full / "bench-20251203-111111.json"), "make bench")
    failover = results.figure(m, "failover_s")
    assert failover.value == 11.7 and failover.source.endswith("chaos-redis-failover-20251203-1300.json")
    missing = results.figure(m, "t4_rps")
    assert (missing.known, missing.value, missing.source) == (False, None, None)
    assert results.figure(results.measured(full / "none"), "backlog_depth").how == "seckill chaos backlog"
    with pytest.raises(KeyError):
        results.figure(m, "no_such_figure")


@pytest.mark.parametrize("value,text", [(85432.1, "85,432"), (1234.5, "1,234"), (100, "100"), (87.25, "87.2"),
                                        (11.7, "11.7"), (12.0, "12"), (8.55, "8.55"), (2, "2"), (0, "0"),
                                        (0.256, "0.26")])
def test_number_format(value, text):
    assert results.number(value) == text


def test_save_writes_a_new_file_each_time(tmp_path):
    first = results.save("rehearsal", "", {"notes": {"opening": "a"}}, tmp_path)
    second = results.save("rehearsal", "", {"notes": {"opening": "b"}}, tmp_path)
    assert first != second and first.name.startswith("rehearsal-") and second.exists()
    data = json.loads(second.read_text())
    assert data["kind"] == "rehearsal" and data["notes"] == {"opening": "b"} and "saved_at" in data
    assert [r["notes"]["opening"] for r in results.all_records(tmp_path)] in (["b", "a"], ["a", "b"])
    assert not list(tmp_path.glob("*.tmp"))
