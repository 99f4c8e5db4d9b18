"""`seckill checklist`: the seed's self-check list from checklists/self_check.md, each item with the learner's
evidence (the number and its file) or what to run; --json, --lang zh, exit 0 always for valid arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import crafted_results as crafted
from seckill.course import checklist, rehearsal
from seckill.measure import results
from seckill.course.checklist import ChecklistError

SECKILL = str(Path(sys.executable).parent / "seckill")
# The seed's section 8, verbatim: the file must carry every line.
SEED_ITEMS = [
    "能讲清楚**为什么Redis不是DB**？(吞吐量差异)",
    "能讲清楚**为什么需要MQ**？(异步解耦)",
    "能讲清楚**超卖的3种场景**？(Redis失败/MQ丢失/并发竞争)",
    "能讲清楚**水平扩展的3个方案**？(加实例/异步框架/本地库存)",
    "能画出**数据流架构图**？(限流→预减→MQ→DB)",
]
ALL_LABS_MINE = {lab: {"passed": True, "score": "5/5", "date": "2025-12-05T10:00:00+00:00", "impl": "labs"}
                 for lab in ("token_bucket", "rate_limit", "stock", "producer", "consumer")}


@pytest.fixture
def full_dir(tmp_path):
    return crafted.write_all(tmp_path / "results")


def by_id(report) -> dict:
    return {item.id: item for item in report.items}


# -- the file is the one source of the items ------------------------------------------------------------

def test_the_file_holds_the_seeds_five_items_in_both_languages():
    items = checklist.items()
    assert [i.zh for i in items] == SEED_ITEMS
    for item in items:
        assert item.en and item.evidence_en and item.evidence_zh, item.id
        assert "`" in item.evidence_en  # names the command that produces the evidence


def test_every_item_has_an_evidence_rule_and_every_rule_an_item():
    assert [i.id for i in checklist.items()] == list(checklist.RULES)
    assert all(checklist.RULES[i.id] for i in checklist.items())


def test_both_languages_have_the_same_words():
    en, zh = checklist.WORDS["en"], checklist.WORDS["zh"]
    assert set(en) == set(zh) and set(en["labels"]) == set(zh["labels"])


def test_a_malformed_file_is_a_clear_error(tmp_path):
    with pytest.raises(ChecklistError, match="no items"):
        checklist.parse_items("# nothing here\n- a plain bullet\n")
    with pytest.raises(ChecklistError, match="Chinese line"):
        checklist.parse_items("- [ ] `x` English\n- [ ] `y` another\n  中文\n")
    with pytest.raises(ChecklistError, match="missing"):
        checklist.items(tmp_path / "gone.md")
    extra = tmp_path / "extra.md"
    extra.write_text("- [ ] `new-item` Something new\n  新的\n")
    with pytest.raises(ChecklistError, match="no evidence rule"):
        checklist.evaluate("en", measured={}, progress={}, rehearsals=[], path=extra)


# -- evidence --------------------------------------------------------------------------------------------

def test_with_nothing_measured_every_item_says_what_to_run(tmp_path):
    report = checklist.evaluate("en", measured=results.measured(tmp_path), progress={}, rehearsals=[])
    assert report.proven == 0 and len(report.items) == 5
    assert all(not p.ok and p.todo for item in report.items for p in item.evidence)
    todo = report.todo()
    for command in ("make bench", "seckill chaos race", "seckill chaos redis-down", "seckill chaos mq-down",
                    "seckill chaos backlog", "seckill grade stock", "seckill grade producer",
                    checklist.REHEARSAL_NOTEBOOK):
        assert command in todo
    assert len(todo) == len(set(todo))
    text = checklist.render(report)
    assert text.count("✗") == 5 + sum(len(i.evidence) for i in report.items) and "✓" not in text
    assert "0 of 5 items proven" in text and "run `make bench`" in text


def test_evidence_quotes_the_number_and_its_file(full_dir):
    report = checklist.evaluate("en", measured=results.measured(full_dir), progress=crafted.PROGRESS,
                                rehearsals=[])
    items = by_id(report)
    redis = items["why-redis-not-db"]
    assert redis.ok
    first = redis.evidence[0]
    assert first.text == f"{results.number(85432.1)} ops/s vs {results.number(1876.5)} transactions/s"
    assert first.sources == ["bench-20251203-111111.json"]
    flask_vs_db = redis.evidence[1]
    assert flask_vs_db.text == "1,234 req/s vs 457 req/s"
    assert flask_vs_db.sources == ["20251203-101010-flask.json", "bench-20251203-111111.json"]
    text = checklist.render(report)
    assert "✓ Redis Lua reservations vs PostgreSQL transactions: 85,432 ops/s vs" in text
    assert "(bench-20251203-111111.json)" in text


def test_a_failure_lab_that_broke_is_not_evidence(full_dir):
    report = checklist.evaluate("en", measured=results.measured(full_dir), progress=crafted.PROGRESS,
                                rehearsals=[])
    oversell = by_id(report)["three-oversell"]
    race, redis_fail, mq_loss, stock = oversell.evidence
    assert race.ok and redis_fail.ok and "redis-failover" in redis_fail.text
    assert not mq_loss.ok and "no order lost" in mq_loss.text and mq_loss.todo == ["seckill chaos mq-down"]
    assert stock.ok  # passed with labs/
    assert not oversell.ok


def test_grading_the_reference_proves_nothing(full_dir):
    report = checklist.evaluate("en", measured=results.measured(full_dir), progress=crafted.PROGRESS,
                                rehearsals=[])
    limits = by_id(report)["data-flow"].evidence[0]
    assert not limits.ok and limits.todo == ["seckill grade token_bucket", "seckill grade rate_limit"]


def test_everything_produced_proves_every_item(full_dir, tmp_path):
    crafted.write(full_dir, "chaos-mq-down-20251203-1400.json",
                  {**crafted.CHAOS["mq-down"], "ok": True, "saved_at": "2025-12-03T14:00:00+00:00",
                   "checks": [{"name": "no order lost", "held": True, "detail": "lost 0"}]})
    crafted.write(full_dir, "bench-20251204-000000.json",
                  {**crafted.BENCH, "saved_at": "2025-12-04T00:00:00+00:00",
                   "tiers": crafted.BENCH["tiers"] + [{"tier": "local-stock", "requests_per_s": 15432.1},
                                                      {"tier": "flask", "requests_per_s": 1111.1,
                                                       "p99_ms": 99.5}]})
    attempt = rehearsal.Attempt()
    attempt.note("design", "fast path: limit → Redis → answer; async path: MQ → order service → PG")
    rehearsal.save_attempt(attempt, full_dir)
    report = checklist.evaluate("en", measured=results.measured(full_dir), progress=ALL_LABS_MINE,
                                rehearsals=rehearsal.attempts(full_dir))
    assert [i.id for i in report.items if not i.ok] == []
    assert report.proven == 5 and report.todo() == []
    assert "every item proven" in checklist.render(report)
    local = by_id(report)["three-scale-out"].evidence[2]
    assert local.text == "15,432 req/s"
    rehearsed = by_id(report)["data-flow"].evidence[3]
    assert rehearsed.sources[0].startswith("rehearsal-")


def test_chinese_report(full_dir):
    report = checklist.evaluate("zh", measured=results.measured(full_dir), progress={}, rehearsals=[])
    text = checklist.render(report)
    assert report.items[0].title == "能讲清楚为什么Redis不是DB？(吞吐量差异)"
    assert "对比" in text and "已证明" in text and "尚未运行，运行 `seckill chaos crash-between`" not in text
    assert "尚未评测" not in text and "你自己的代码还没有通过" in text


# -- the command -----------------------------------------------------------------------------------------

def run_cli(*args, results_dir: Path, run_dir: Path):
    env = {**os.environ, "SECKILL_RESULTS_DIR": str(results_dir), "SECKILL_RUN_DIR": str(run_dir)}
    return subprocess.run([SECKILL, "checklist", *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_json_reads_results_and_grades(full_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "progress.json").write_text(json.dumps(crafted.PROGRESS))
    done = run_cli("--json", results_dir=full_dir, run_dir=run_dir)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["total"] == 5 and data["lang"] == "en"
    items = {i["id"]: i for i in data["items"]}
    assert items["why-redis-not-db"]["ok"] is True
    assert items["three-oversell"]["evidence"][3]["ok"] is True  # stock passed with labs/, read from progress.json
    assert "seckill chaos mq-down" in data["todo"]


def test_cli_with_nothing_is_a_report_not_an_error(tmp_path):
    done = run_cli("--lang", "zh", results_dir=tmp_path / "none", run_dir=tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert "能画出数据流架构图" in done.stdout and "make bench" in done.stdout and not done.stderr


def test_cli_rejects_a_language_it_does_not_have(tmp_path):
    done = run_cli("--lang", "fr", results_dir=tmp_path, run_dir=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '--lang'" in done.stderr and "Traceback" not in done.stderr
