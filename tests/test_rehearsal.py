"""The interview rehearsal: the script quotes only recorded or seed figures, both languages say the same
things, the model answer stays hidden until the learner has answered, ratings are 1-5, attempts are kept."""

from __future__ import annotations

import json
import string

import pytest

import crafted_results as crafted
from seckill.course import rehearsal
from seckill.measure import results
from seckill.course.rehearsal import Attempt, RehearsalError
from seckill.course.rehearsal_content import (CARD_ORDER, LANGS, PART_ORDER, PART_SECONDS, PROTOCOL_NUMBERS,
                                              SEED_FIGURES, TEXT)

LANG = pytest.mark.parametrize("lang", LANGS)
# list numbering ("1) … 2) … 3)") and "stock > 0": not figures
ORDINALS = {"0", "1", "2", "3"}


@pytest.fixture
def full_dir(tmp_path):
    return crafted.write_all(tmp_path / "results")


@pytest.fixture
def full(full_dir):
    return results.measured(full_dir)


@pytest.fixture
def none(tmp_path):
    return results.measured(tmp_path / "empty")


def allowed_numbers(records_dir=None, progress=None) -> set[str]:
    seed = {str(n) for n in SEED_FIGURES | PROTOCOL_NUMBERS} | ORDINALS
    recorded = crafted.numbers_in_records(records_dir, progress) if records_dir else set()
    return seed | recorded


def invented(text: str, allowed: set[str]) -> list[str]:
    return [n for n in rehearsal.numbers_in(text) if n not in allowed]


def all_text(measured, lang, progress=None) -> str:
    script = rehearsal.fill_script(measured, lang, progress)
    parts = [p.script for p in script.parts]
    for card in rehearsal.cards(lang, measured, progress):
        parts += [card.model, card.yours]
    return "\n".join(parts)


# -- the script never invents a number ---------------------------------------------------------

def test_the_number_check_itself_catches_an_invented_figure():
    allowed = allowed_numbers()
    assert invented("I measured 12,345 req/s on flask-x4 with p99 of 87 ms", allowed) == ["12345", "87"]
    assert invented("10,000 QPS (seed), 30 s, T1, p99, 409 already_bought", allowed) == []


@LANG
def test_with_no_records_only_seed_figures_appear_and_each_gap_says_what_to_run(none, lang):
    script = rehearsal.fill_script(none, lang, progress={})
    assert [p.id for p in script.parts] == list(PART_ORDER)
    assert [p.seconds for p in script.parts] == [30, 60, 60, 30]
    text = all_text(none, lang, progress={})
    assert invented(text, allowed_numbers()) == []
    assert TEXT[lang]["yours"] not in text
    missing = TEXT[lang]["missing"].format(how="make bench")
    assert all(missing in p.script for p in script.parts if p.id != "close")
    assert TEXT[lang]["missing"].format(how="seckill chaos redis-failover") in script.parts[-1].script
    assert script.sources == []
    assert TEXT[lang]["ui"]["no_sources"] in script.markdown()


@LANG
def test_with_records_every_number_is_a_recorded_or_a_seed_figure(full_dir, full, lang):
    text = all_text(full, lang, progress=crafted.PROGRESS)
    assert invented(text, allowed_numbers(full_dir, crafted.PROGRESS)) == []
    assert invented(text, allowed_numbers()) != []  # and it does quote recorded figures


def test_the_script_quotes_your_figures_marked_as_yours(full_dir, full):
    script = rehearsal.fill_script(full, "en")
    by_id = {p.id: p.script for p in script.parts}
    assert f"**{results.number(1876.5)} transactions/s** (yours)" in by_id["opening"]
    assert f"**{results.number(85432.1)} ops/s** (yours)" in by_id["design"]
    assert "**1,234 req/s** (yours) on one Flask process" in by_id["depth"]
    assert "**9,876 req/s** (yours) on FastAPI" in by_id["depth"]
    assert "**2 cores** (yours)" in by_id["depth"]
    assert "**11.7 s** (yours)" in by_id["close"] and "**5,123 messages** (yours)" in by_id["close"]
    # the race lab held; crash-between was never run: it says how to run it
    assert "every invariant held" in by_id["depth"] and "run `seckill chaos crash-between`" in by_id["depth"]
    assert "10,000 QPS (seed)" in by_id["opening"]
    names = {p.rsplit("/", 1)[-1] for p in script.sources}
    assert "bench-20251203-111111.json" in names and "20251203-101010-flask.json" in names
    assert "`bench-20251203-111111.json`" in script.markdown()


def test_chinese_script_marks_yours_and_seed(full):
    script = rehearsal.fill_script(full, "zh")
    opening = script.parts[0].script
    assert "10000 QPS（原文）" in opening and "（你的实测）" in opening and "事务/秒" in opening


# -- both languages are complete -----------------------------------------------------------------

def _shape(node):
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_shape(v) for v in node]
    return type(node).__name__


def _templates(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _templates(v, f"{prefix}.{k}")
    elif isinstance(node, str):
        yield prefix, node


def test_both_languages_have_the_same_keys_and_shapes():
    assert _shape(TEXT["en"]) == _shape(TEXT["zh"])
    assert set(TEXT["en"]["parts"]) == set(PART_ORDER) == set(PART_SECONDS)
    assert set(TEXT["en"]["cards"]) == set(CARD_ORDER)


def test_both_languages_quote_the_same_figures_in_each_template():
    en, zh = dict(_templates(TEXT["en"])), dict(_templates(TEXT["zh"]))
    for key, template in en.items():
        assert sorted(rehearsal.fields(template)) == sorted(rehearsal.fields(zh[key])), key
    for key, template in zh.items():
        assert template.strip(), f"{key} is empty in Chinese"
        for _lit, name, spec, conv in string.Formatter().parse(template):
            assert not spec and not conv, key


@LANG
def test_every_card_has_words_and_renders(full, none, lang):
    for measured in (full, none):
        cards = rehearsal.cards(lang, measured, progress={})
        assert [c.id for c in cards] == list(CARD_ORDER)
        for c in cards:
            assert c.question and c.hint and c.model and c.yours
            assert "{" not in c.yours and "}" not in c.yours


def test_the_seeds_own_chinese_answers_are_kept_verbatim():
    zh = TEXT["zh"]["cards"]
    assert "RabbitMQ 支持 ACK 确认，适合实时订单。Kafka 是日志系统，吞吐量高但过度设计（YAGNI）。" in zh["kafka"]["model"]
    assert "多层限流：用户级(10s/5次) → IP级(10s/100次) → 设备指纹 → 验证码（可选）。" in zh["spamming"]["model"]
    assert "主从切换(< 30s) + 临时降级到本地内存 + 人工对账。" in zh["redis_down"]["model"]
    assert "用Redis原子操作理论上不会超卖，但MQ发送失败会丢订单，需要对账补偿。" in zh["oversell"]["model"]
    assert "黄金法则：瓶颈定方案，权衡选技术，YAGNI 防过度。" in TEXT["zh"]["parts"]["close"]["script"]


def test_unknown_language_and_template_field_are_clear_errors(full):
    with pytest.raises(RehearsalError, match="en, zh"):
        rehearsal.fill_script(full, "fr")
    with pytest.raises(KeyError):
        rehearsal.fill("{no_such_figure}", full)


# -- the drill cards quote the failure labs and the grades ------------------------------------------

def test_failure_lab_card_lists_every_run_with_its_verdict(full):
    card = rehearsal.card("failure_labs", "en", full, progress={})
    assert "- race (naive check-then-set vs Lua): **every invariant held" in card.yours
    assert "- mq-down (RabbitMQ stopped mid-sale): **an invariant broke (no order lost)" in card.yours
    assert "down_s 6.5 · answers_503 412" in card.yours  # the headline figures, not every metric
    assert "naive_oversold 37 · atomic_oversold 0" in card.yours and "buyers" not in card.yours
    assert "- consumer-crash: not run yet: run `seckill chaos consumer-crash`" in card.yours


def test_failure_lab_card_without_any_lab_says_what_to_run(none):
    card = rehearsal.card("failure_labs", "zh", none, progress={})
    assert "seckill chaos redis-down" in card.yours and "你还没有做过故障实验" in card.yours


def test_grades_count_only_your_own_code(full):
    card = rehearsal.card("spamming", "en", full, progress=crafted.PROGRESS)
    assert "one item per user **passed 6/6 on 2025-12-04** (yours)" in card.yours
    assert "only the reference was graded: grade yours with `seckill grade token_bucket`" in card.yours
    assert "not graded yet: run `seckill grade rate_limit`" in card.yours


def test_unknown_card():
    with pytest.raises(RehearsalError, match="kafka"):
        rehearsal.card("nope", "en", {}, progress={})


# -- an attempt: reveal, rate, save -----------------------------------------------------------------

@pytest.mark.parametrize("answer", ["", "   ", "\n\t"])
def test_reveal_is_refused_for_an_empty_answer(answer):
    attempt = Attempt()
    attempt.answer("kafka", answer)
    with pytest.raises(RehearsalError, match="Write your answer first"):
        attempt.reveal("kafka")
    assert not attempt.answers["kafka"].revealed
    with pytest.raises(RehearsalError):
        Attempt(lang="zh").reveal("oversell")  # never answered at all


def test_reveal_after_an_answer_then_rate():
    attempt = Attempt()
    attempt.answer("kafka", "acks per message; Kafka is a log")
    with pytest.raises(RehearsalError, match="reveal the model answer"):
        attempt.rate("kafka", 4)
    attempt.reveal("kafka")
    attempt.rate("kafka", 4)
    assert attempt.answers["kafka"].rating == 4


@pytest.mark.parametrize("bad", [0, 6, -1, 3.5, "3", True, None, [3]])
def test_ratings_must_be_whole_numbers_from_1_to_5(bad):
    with pytest.raises(RehearsalError, match="1 to 5"):
        rehearsal.validate_rating(bad)


@pytest.mark.parametrize("good", [1, 2, 3, 4, 5])
def test_valid_ratings(good):
    assert rehearsal.validate_rating(good) == good


def test_unknown_part_or_card_in_an_attempt():
    with pytest.raises(RehearsalError, match="opening"):
        Attempt().note("middle", "x")
    with pytest.raises(RehearsalError, match="kafka"):
        Attempt().answer("nope", "x")


def test_attempts_are_saved_one_file_each_and_read_back(tmp_path):
    with pytest.raises(RehearsalError, match="nothing to save"):
        rehearsal.save_attempt(Attempt(), tmp_path)
    first = Attempt(lang="zh")
    first.note("design", "快速路径 / 异步路径")
    first.answer("kafka", "ACK")
    first.reveal("kafka")
    first.rate("kafka", 2)
    p1 = rehearsal.save_attempt(first, tmp_path)
    second = Attempt()
    second.answer("kafka", "acks, confirms, YAGNI")
    second.reveal("kafka")
    second.rate("kafka", 5)
    second.answer("oversell", "race, redis, mq")  # answered, not revealed: saved without a rating
    p2 = rehearsal.save_attempt(second, tmp_path)
    assert p1 != p2 and p1.exists() and p2.name.startswith("rehearsal-")
    data = json.loads(p1.read_text())
    assert data["kind"] == "rehearsal" and data["lang"] == "zh"
    assert data["notes"] == {"design": "快速路径 / 异步路径"}
    assert data["cards"]["kafka"] == {"text": "ACK", "revealed": True, "rating": 2}
    saved = rehearsal.attempts(tmp_path)
    assert len(saved) == 2
    rows = rehearsal.ratings_table(saved)
    assert sorted(r["rating"] for r in rows) == [2, 5] and {r["card"] for r in rows} == {"kafka"}
    # rehearsals are not measurements: measured() ignores them
    assert results.measured(tmp_path)["tiers"] == {}


def test_ratings_chart_has_title_and_axis_units(tmp_path):
    assert rehearsal.ratings_figure([], "en") is None
    attempt = Attempt()
    attempt.answer("scale_out", "instances, async, local stock")
    attempt.reveal("scale_out")
    attempt.rate("scale_out", 3)
    rehearsal.save_attempt(attempt, tmp_path)
    fig = rehearsal.ratings_figure(rehearsal.attempts(tmp_path), "en")
    assert fig.layout.title.text and "1–5" in fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert list(fig.data[0].y) == [3]


# -- capacity (step 2) and the seed-vs-yours chart -------------------------------------------------

def test_capacity_uses_your_rate_and_the_seeds(full, none):
    rows = {r["tier"]: r for r in rehearsal.capacity(full, peak_qps=10_000)}
    assert rows["flask"]["your_rps"] == 1234.5 and rows["flask"]["copies_needed_yours"] == 9
    assert rows["flask"]["copies_needed_seed"] == 10 and rows["fastapi"]["copies_needed_seed"] == 1
    assert rows["db-direct"]["copies_needed_yours"] == 22
    assert rows["local-stock"]["your_rps"] is None and "make bench" in rows["local-stock"]["source"]
    assert all(r["your_rps"] is None for r in rehearsal.capacity(none))
    with pytest.raises(RehearsalError, match="positive"):
        rehearsal.capacity(full, peak_qps=0)


@LANG
def test_seed_vs_yours_chart_has_title_and_axis_units(full, lang):
    fig = rehearsal.seed_vs_yours_figure(full, lang)
    assert fig.layout.title.text and fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert fig.layout.yaxis.type == "log"
    yours = dict(zip(fig.data[1].x, fig.data[1].y))
    assert yours["flask"] == 1234.5 and yours["local-stock"] is None


# -- the widgets are thin and follow the same rules ---------------------------------------------------

def test_widgets_refuse_reveal_until_answered_and_switch_language(full):
    from seckill.course.rehearsal_ui import Rehearsal

    r = Rehearsal(measured=full, progress={})
    box = r.card("kafka")
    answer, (reveal, message), rating_box = box.children[1], box.children[2].children, box.children[4]
    assert reveal.disabled and rating_box.layout.display == "none"
    answer.value = "   "
    assert reveal.disabled
    reveal.click()  # even if a front end sent the click: refused
    assert "Write your answer first" in message.value and not r.attempt.answers["kafka"].revealed
    answer.value = "acks per message"
    assert not reveal.disabled
    reveal.click()
    assert r.attempt.answers["kafka"].revealed and rating_box.layout.display == "flex"
    rating_box.children[0].value = 4
    assert r.attempt.answers["kafka"].rating == 4
    part = r.part("opening")
    part.children[2].value = "10k QPS, one counter"
    assert r.attempt.notes["opening"] == "10k QPS, one counter"
    r.switch.value = "zh"
    assert reveal.description == TEXT["zh"]["ui"]["reveal"] and r.attempt.lang == "zh"
    assert part.children[1].children[2].value == TEXT["zh"]["ui"]["left"].format(s=30)
    assert answer.value == "acks per message"  # switching language keeps what you wrote
