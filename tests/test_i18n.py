"""The Chinese edition cannot go stale unnoticed, and the tooling speaks Chinese when asked.

Notebooks: every Chinese twin records the hash of the English cell it translates (tools/make_notebooks.py);
a changed English cell, a cell in one edition only, or code that differs between the editions fails here.
Tooling strings: the catalogue (seckill.i18n_zh) is keyed by the English text; an English hint changed at
its call site, or a catalogue entry nothing uses any more, fails here.
"""

from __future__ import annotations

import ast
import functools
import re
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from seckill.stack import envcheck
from seckill import i18n
from seckill.i18n_zh import GRADERS_TRANSLATED, ZH

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "services"

# Notebooks whose Chinese edition is complete: every prose cell has an up-to-date twin.
TRANSLATED = [p.stem for p in sorted((REPO / "notebooks" / "src").glob("*.md"))]


def _tool():
    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "tools" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_notebooks"] = module
    spec.loader.exec_module(module)
    return module


mk = _tool()


# -- notebooks ---------------------------------------------------------------------------------------

def test_editions_are_generated_from_the_sources():
    assert mk.sources(), "notebooks/src/ holds no sources"
    assert mk.generate(check=True) == [], "run `make notebooks` (or --ingest after editing an English .ipynb)"
    assert {p.stem for p in mk.sources()} == {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}


@pytest.mark.parametrize("name", TRANSLATED)
def test_translated_notebook_has_no_missing_or_stale_cell(name):
    problems = mk.parity([mk.SRC / f"{name}.md"])
    assert not problems, "\n".join(map(str, problems))


def code_differences(en_path: Path, zh_path: Path) -> list[str]:
    """What differs between the two editions apart from prose: cell kinds, ids, code."""
    en = nbformat.read(en_path, as_version=4).cells
    zh = [c for c in nbformat.read(zh_path, as_version=4).cells if c.get("id") != mk.ZH_SETUP_ID]
    if [(c.cell_type, c.get("id")) for c in en] != [(c.cell_type, c.get("id")) for c in zh]:
        return [f"{en_path.stem}: the editions do not have the same cells"]
    return [f"{en_path.stem}: code cell {a.get('id')} differs" for a, b in zip(en, zh)
            if a.cell_type == "code" and a.source != b.source]


@pytest.mark.parametrize("name", [p.stem for p in mk.sources()])
def test_code_is_the_same_in_both_editions(name):
    assert code_differences(REPO / "notebooks" / f"{name}.ipynb", mk.ZH / f"{name}.ipynb") == []


def test_chinese_edition_sets_its_language_first():
    for src in mk.sources():
        first = nbformat.read(mk.ZH / f"{src.stem}.ipynb", as_version=4).cells[0]
        assert first.get("id") == mk.ZH_SETUP_ID and 'SECKILL_LANG"] = "zh"' in first.source


# The test of the test: a deliberately edited English cell, a missing twin and a changed code cell fail.

def test_parity_fails_on_an_edited_english_cell(tmp_path):
    src = tmp_path / "10_token_bucket.md"
    shutil.copy(mk.SRC / src.name, src)
    assert mk.parity([src]) == []
    nb = mk.read_source(src)
    english = next(c for c in nb.cells if c.cell_type == "markdown" and not mk.is_zh(c))
    english.source += "\n\nOne more English sentence, not yet translated."
    mk.write_source(nb, src)
    problems = mk.parity([src])
    assert [(p.cell_id, p.what) for p in problems] == [(english.metadata["id"], "stale")]


def test_parity_fails_on_a_cell_in_one_edition_only(tmp_path):
    src = tmp_path / "10_token_bucket.md"
    shutil.copy(mk.SRC / src.name, src)
    nb = mk.read_source(src)
    twin = next(c for c in nb.cells if mk.is_zh(c))
    nb.cells.remove(twin)
    mk.write_source(nb, src)
    assert [p.what for p in mk.parity([src])] == ["missing"]


def test_code_check_fails_on_a_changed_code_cell(tmp_path):
    zh = nbformat.read(mk.ZH / "10_token_bucket.ipynb", as_version=4)
    code = next(c for c in zh.cells if c.cell_type == "code" and c.get("id") != mk.ZH_SETUP_ID)
    code.source += "\nprint('only in Chinese')"
    nbformat.write(zh, tmp_path / "zh.ipynb")
    assert code_differences(REPO / "notebooks" / "10_token_bucket.ipynb", tmp_path / "zh.ipynb") \
        == [f"10_token_bucket: code cell {code.id} differs"]


def test_ingest_folds_an_english_edit_back_and_flags_its_twin(tmp_path, monkeypatch):
    src, ipynb = tmp_path / "10_token_bucket.md", tmp_path / "10_token_bucket.ipynb"
    shutil.copy(mk.SRC / src.name, src)
    nb = nbformat.read(REPO / "notebooks" / ipynb.name, as_version=4)
    edited = next(c for c in nb.cells if c.cell_type == "markdown")
    edited.source = edited.source.replace("token bucket", "TOKEN BUCKET", 1)
    new = nbformat.v4.new_markdown_cell("A new English cell.")
    nb.cells.insert(3, new)
    nbformat.write(nb, ipynb)
    assert mk.ingest_one(ipynb, src) == 2
    en, _zh, problems = mk.editions(mk.read_source(src), "t")
    assert [c.source for c in en.cells] == [c.source for c in nb.cells]
    assert sorted((p.cell_id, p.what) for p in problems) == sorted([(edited.id, "stale"), (new.id, "missing")])


# -- strings of the tooling ------------------------------------------------------------------------------

def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _resolve(node, constants: dict) -> str | None:
    """A string built from literals, named string constants and + (e.g. "… " + ONE_STEP_HINT)."""
    if _literal(node) is not None:
        return _literal(node)
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _resolve(node.left, constants), _resolve(node.right, constants)
        return left + right if left is not None and right is not None else None
    return None


class _Strings(ast.NodeVisitor):
    """Walks a module in source order; a name holds the string last assigned to it in its own function
    (or the module), so `hint = "…"` in one check and `hint + " …"` in another resolve as they run."""

    CALLS = {"expect": [1], "Check": [0, 2], "CheckFailed": [0]}

    def __init__(self, module: ast.Module) -> None:
        self.scopes = [{}]
        self.found: set[str] = set()
        for node in module.body:  # module constants first: a check may use one defined below it
            if isinstance(node, ast.Assign):
                self._assign(node)

    def _assign(self, node: ast.Assign) -> None:
        value = _resolve(node.value, self.scopes[-1])
        for target in node.targets:
            if isinstance(target, ast.Name) and value is not None:
                self.scopes[-1][target.id] = value

    def visit_FunctionDef(self, node) -> None:
        self.scopes.append(dict(self.scopes[-1]))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        self._assign(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            for i in self.CALLS.get(node.func.id, []):
                if i < len(node.args):
                    value = _resolve(node.args[i], self.scopes[-1])
                    if value:
                        self.found.add(value)
            for kw in node.keywords:
                value = _resolve(kw.value, self.scopes[-1]) if kw.arg == "hint" else None
                if value:
                    self.found.add(value)
        self.generic_visit(node)


def grader_strings(path: Path) -> set[str]:
    """Check titles and hints of one grader module: what the learner reads in the report."""
    tree = ast.parse(path.read_text())
    visitor = _Strings(tree)
    visitor.visit(tree)
    return visitor.found


def tr_strings(root: Path) -> set[str]:
    """Every literal passed to tr(...), or literal or f-string marked N_(...), in the package."""
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                if node.func.id == "tr" and _literal(node.args[0]):
                    found.add(_literal(node.args[0]))
                elif node.func.id == "N_" and message_template(node.args[0]):
                    found.add(message_template(node.args[0]))
    return found


def test_an_edited_doctor_text_is_caught(tmp_path):
    """The test of the test for doctor's texts: a reworded fix, or a new label, has no Chinese yet."""
    text = (SERVICES / "stack" / "envcheck.py").read_text()
    assert untranslated(tr_strings(SERVICES)) == []
    (tmp_path / "envcheck.py").write_text(text.replace('tr("not found on this machine")', 'tr("not on this machine")')
                                          .replace('N_("CJK font")', 'N_("Chinese font")'))
    assert untranslated(tr_strings(tmp_path)) == ["Chinese font", "not on this machine"]


def test_tr_is_never_given_an_f_string():
    """tr(f"…") looks up the filled-in text and never finds it: use tr("… {x}").format(x=…) or N_(f"…")."""
    wrong = [f"{path.relative_to(SERVICES)}:{node.lineno}" for path in SERVICES.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tr"
             and node.args and isinstance(node.args[0], ast.JoinedStr)]
    assert wrong == []


_CONVERSION = {115: "!s", 114: "!r", 97: "!a"}


def message_template(node) -> str | None:
    """An error message as its source spells it: f"no product {product_id}" -> "no product {product_id}"."""
    if _literal(node) is not None:
        return _literal(node)
    if isinstance(node, ast.JoinedStr):
        out = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                out += part.value
                continue
            spec = f":{message_template(part.format_spec) or ''}" if part.format_spec is not None else ""
            out += "{" + ast.unparse(part.value) + _CONVERSION.get(part.conversion, "") + spec + "}"
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = message_template(node.left), message_template(node.right)
        return left + right if left is not None and right is not None else None
    return None


@functools.lru_cache(maxsize=None)
def error_classes(root: Path = SERVICES) -> frozenset[str]:
    """SeckillError, the CLI's UserError, and every class derived from them in the package."""
    known = {"SeckillError", "UserError"}
    trees = [ast.parse(path.read_text()) for path in root.rglob("*.py")]
    grew = True
    while grew:
        grew = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in known and any(
                        (base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)) in known
                        for base in node.bases):
                    known.add(node.name)
                    grew = True
    return frozenset(known)


def _name(func) -> str | None:
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def error_messages(path: Path, classes: frozenset[str]) -> set[str]:
    """The message of every `raise SomeSeckillError("…" / f"…")` in one module: what `seckill` prints.

    A message made by a function of the module (`raise MissingServers(how_to_install(names))`) counts
    with the f-strings that function returns."""
    tree = ast.parse(path.read_text())
    found, makers = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args \
                and _name(node.exc.func) in classes:
            message, arg = message_template(node.exc.args[0]), node.exc.args[0]
            if message:
                found.add(message)
            elif isinstance(arg, ast.Call) and _name(arg.func):
                makers.add(_name(arg.func))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in makers:
            found |= {message_template(r.value) for r in ast.walk(node) if isinstance(r, ast.Return) and r.value
                      and message_template(r.value)}
    return found


def untranslated(strings: set[str]) -> list[str]:
    return sorted(s for s in strings if s not in ZH)


def test_every_tr_string_is_translated():
    assert untranslated(tr_strings(SERVICES)) == []


@pytest.mark.parametrize("grader", GRADERS_TRANSLATED)
def test_translated_grader_has_every_title_and_hint_in_chinese(grader):
    from seckill.course.grader import LABS, TIMEOUT_HINT

    strings = grader_strings(SERVICES / "course" / "graders" / f"{grader}.py") | {TIMEOUT_HINT, LABS[grader][2]}
    assert untranslated(strings) == []


def test_catalogue_has_no_entry_nothing_uses():
    from seckill.course.grader import LABS, TIMEOUT_HINT

    used = tr_strings(SERVICES) | {TIMEOUT_HINT} | {title for _m, _n, title in LABS.values()}
    for grader in GRADERS_TRANSLATED:
        used |= grader_strings(SERVICES / "course" / "graders" / f"{grader}.py")
    classes = error_classes()
    for module in SERVICES.rglob("*.py"):
        used |= error_messages(module, classes)
    assert sorted(set(ZH) - used) == []


def _english_phrases(text: str) -> list[str]:
    """Three Latin words in a row outside `code`: English prose left in a Chinese text."""
    return re.findall(r"\b[A-Za-z]+ [A-Za-z]+ [A-Za-z]+\b", re.sub(r"`[^`]*`", "", text))


@pytest.mark.parametrize("lab", GRADERS_TRANSLATED)
def test_a_report_of_every_check_failing_reads_in_chinese(lab, monkeypatch):
    """`seckill grade LAB --lang zh` as the learner reads it, every title failing with each hint of the lab."""
    import importlib

    from seckill.course import grader

    titles = [c.title for c in importlib.import_module(f"seckill.course.graders.{lab}").CHECKS]
    hints = sorted(grader_strings(SERVICES / "course" / "graders" / f"{lab}.py") - set(titles))
    results = [grader.CheckResult(title, False, hints[i % len(hints)]) for i, title in enumerate(titles)]
    results += [grader.CheckResult(titles[0], False, hint) for hint in hints]
    report = grader.Report(lab, "labs", results)
    monkeypatch.setenv("SECKILL_LANG", "zh")
    assert _english_phrases(str(report)) == [] and "提示：" in str(report)
    monkeypatch.setenv("SECKILL_LANG", "en")
    assert len(_english_phrases(str(report))) > len(hints)  # the test of the test: English is found


def test_an_edited_hint_is_caught(tmp_path):
    """The test of the test: a hint reworded in English no longer finds its Chinese."""
    copy = tmp_path / "stock.py"
    text = (SERVICES / "course" / "graders" / "stock.py").read_text()
    copy.write_text(text.replace("try_reserve says yes while there is stock", "try_reserve answers yes while stock lasts"))
    assert untranslated(grader_strings(SERVICES / "course" / "graders" / "stock.py")) == []
    assert untranslated(grader_strings(copy)) == ["try_reserve answers yes while stock lasts and no once it is gone."]


def test_a_hint_named_alike_in_two_checks_resolves_to_its_own(tmp_path):
    """The test of the extractor: `hint` assigned in two checks, `hint + "…"` in the first, as they run."""
    grader = tmp_path / "g.py"
    grader.write_text(
        "def one(ctx, mod):\n    hint = 'First.'\n    expect(False, hint + ' More.')\n\n"
        "def two(ctx, mod):\n    hint = 'Second.'\n    expect(False, hint)\n\n"
        "CHECKS = [Check('one', one, HINT), Check('two', two, HINT)]\nHINT = 'Try it.'\n")
    assert grader_strings(grader) == {"First. More.", "Second.", "one", "two", "Try it."}


def test_every_grader_is_translated():
    from seckill.course.grader import LABS

    assert sorted(GRADERS_TRANSLATED) == sorted(LABS)


def test_tooling_chinese_is_proofread():
    """The catalogue's Chinese follows the notebooks' rules: 5 秒 not 5 s, full-width punctuation, spacing."""
    texts = [(english[:40], re.sub(r"`[^`]*`", "`x`", chinese)) for english, chinese in ZH.items()]
    assert proofread(texts) == []


@pytest.mark.parametrize("module", sorted(str(p.relative_to(SERVICES)) for p in SERVICES.rglob("*.py")))
def test_every_error_the_cli_prints_is_translated(module):
    """Each module's SeckillError messages: what `seckill` prints as its one line, and a notebook shows."""
    assert untranslated(error_messages(SERVICES / module, error_classes())) == []


def test_a_chinese_template_keeps_the_english_placeholders():
    """"{total} 项检查通过了 {passed} 项" may reorder them, never drop or misspell one."""
    placeholder = re.compile(r"\{[^{}]*\}")
    assert [english for english, chinese in ZH.items()
            if sorted(placeholder.findall(english)) != sorted(placeholder.findall(chinese))] == []


def test_an_edited_error_message_is_caught(tmp_path):
    """The test of the test: a reworded raise no longer finds its Chinese, and its message shows English."""
    copy = tmp_path / "sale.py"
    copy.write_text((SERVICES / "system" / "sale.py").read_text().replace("has no time zone; add one", "lacks a time zone; add one"))
    assert untranslated(error_messages(copy, error_classes())) == [
        "{what} {value!r} lacks a time zone; add one, e.g. {value}+08:00 or {value}Z (UTC)"]
    assert i18n.tr_message("--starts-at '20:00' lacks a time zone; add one, e.g. 20:00+08:00 or 20:00Z (UTC)",
                           "zh").startswith("--starts-at '20:00' lacks")


def test_an_error_reaches_the_user_in_chinese(monkeypatch):
    from seckill.system.sale import SaleError, parse_time

    with pytest.raises(SaleError) as info:
        parse_time("2026-11-25T20:00:00", "--starts-at")
    message = str(info.value)
    assert "has no time zone" in message  # raised in English: the message is data until shown
    assert i18n.tr_message(message, "zh") == ("--starts-at '2026-11-25T20:00:00' 没有带时区；请加上，例如 "
                                              "2026-11-25T20:00:00+08:00 或 2026-11-25T20:00:00Z（UTC）")
    monkeypatch.setenv("SECKILL_LANG", "zh")
    assert "没有带时区" in info.value._render_traceback_()[0]  # a notebook of the Chinese edition
    assert i18n.tr_message("a message nobody translated") == "a message nobody translated"
    # a value that is itself a sentence is translated too, and sits in the Chinese without spaces
    assert i18n.tr_message("port 18888 is taken by another process; use another: make lab PORT=18988") == \
        "端口 18888 被另一个进程占用了；换一个：make lab PORT=18988"
    assert i18n.tr_message("port 18888 is taken by pid 7 (python); use another: make lab PORT=18988") == \
        "端口 18888 被 pid 7 (python) 占用了；换一个：make lab PORT=18988"


def test_cli_errors_follow_the_language():
    seckill = str(REPO / ".venv" / "bin" / "seckill")
    zh = subprocess.run([seckill, "grade", "tokenbucket", "--lang", "zh"], capture_output=True, text=True, timeout=60)
    assert zh.returncode == 2 and zh.stderr.startswith("seckill: 没有 'tokenbucket' 这个实验；现有的实验是：token_bucket"), zh.stderr
    env = {**os.environ, "SECKILL_LANG": "zh"}
    bad = subprocess.run([seckill, "sale", "create", "--product", "1", "--stock", "5", "--starts-at", "2026-11-25T20:00"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "seckill: --starts-at '2026-11-25T20:00' 没有带时区；请加上，例如 2026-11-25T20:00+08:00 或 2026-11-25T20:00Z（UTC）"]
    en = subprocess.run([seckill, "grade", "tokenbucket"], capture_output=True, text=True, timeout=60,
                        env={**os.environ, "SECKILL_LANG": "en"})
    assert en.stderr.startswith("seckill: unknown lab 'tokenbucket'; the labs are: token_bucket")


# -- the language setting, fonts ---------------------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "en_US.UTF-8"}, "en"), ({}, "en"),
    ({"LANG": "en_US.UTF-8", "SECKILL_LANG": "zh"}, "zh"), ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_GB"}, "zh"),
    ({"SECKILL_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
])
def test_language_from_environment(monkeypatch, env, expected):
    for var in ("SECKILL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert i18n.lang() == expected
    assert (i18n.tr("FAIL") == "失败") == (expected == "zh")


def test_unknown_language_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("SECKILL_LANG", raising=False)
    with pytest.raises(ValueError, match="use one of en, zh"):
        i18n.set_lang("klingon")


def test_doctor_names_a_font_when_no_cjk_font_is_found(monkeypatch):
    missing = envcheck.check_cjk_font("")
    assert not missing.ok and missing.warning and "fonts-noto-cjk" in missing.fix
    found = envcheck.check_cjk_font("WenQuanYi Micro Hei,文泉驛微米黑\n")
    assert found.ok and "WenQuanYi Micro Hei" in found.found
    monkeypatch.setenv("SECKILL_LANG", "zh")
    assert "方框" in envcheck.check_cjk_font("").found


def test_doctor_speaks_chinese(monkeypatch):
    monkeypatch.setenv("SECKILL_LANG", "zh")
    report = envcheck.Report([envcheck.check_python((3, 8, 0)), envcheck.check_memory(100 * 2**20),
                              envcheck.check_disk(5 * 2**30, Path("/srv/course")), envcheck.check_cjk_font("")])
    text = str(report)  # a fixed path: the repo's own may hold English words (CI clones under /check/)
    assert "[失败] Python：Python — 3.8.0 太旧了" in text and "修复：装好 Python 3.11+ 之后重建环境" in text
    assert "[失败] 内存：可用内存 — 可用 100 MB" in text and "[警告] 字体：中文字体" in text
    assert "磁盘：可用磁盘空间" in text and "2 个问题要修，1 个警告（共 4 项检查）" in text
    assert not re.search(r"\b(fix|free|checks?|problems?|available)\b", text), text
    with pytest.raises(envcheck.NotReady, match="还没准备好：有 2 个问题"):
        report.require()
    monkeypatch.setenv("SECKILL_LANG", "en")
    # the labels follow the language when shown; what a check found was written in the language of its run
    assert "[FAIL] python: Python — 3.8.0 太旧了" in str(report) and "\n       fix: " in str(report)
    assert "is too old" in envcheck.check_python((3, 8, 0)).found


def test_charts_follow_the_language(monkeypatch):
    from seckill.measure import charts

    run = {"summary": {"tier": "flask", "requests": 10, "users": 5}, "invariants": {}, "history": []}
    monkeypatch.setenv("SECKILL_LANG", "zh")
    assert "个请求的结果" in charts.outcomes(run).layout.title.text
    monkeypatch.setenv("SECKILL_LANG", "en")
    assert "outcomes of 10 requests" in charts.outcomes(run).layout.title.text


# -- seckill grade stock --lang zh ------------------------------------------------------------------------

def _grade(*args, env=None):
    return subprocess.run([str(REPO / ".venv" / "bin" / "seckill"), "grade", "stock", *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_grade_stock_in_chinese(stack_urls, tmp_path):
    # a StockCache whose get_stock answers a str: one check fails, and its hint must come in Chinese
    broken = (REPO / "solutions" / "stock.py").read_text().replace(
        "return None if value is None else int(value)", "return None if value is None else str(int(value))")
    assert "str(int(value))" in broken
    (tmp_path / "stock.py").write_text(broken)
    done = _grade("--impl", str(tmp_path), "--lang", "zh")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "基于 Redis 的库存预减" in out and "失败" in out and "通过" in out
    assert "提示：get_stock 要读回 set_stock 存进去的值" in out
    assert "hint:" not in out
    english = _grade("--impl", str(tmp_path), env={"SECKILL_LANG": "", "LANG": "C.UTF-8", "LC_ALL": ""})
    assert "hint: get_stock reads back what set_stock stored" in english.stdout


def test_grade_token_bucket_in_chinese(tmp_path):
    # a bucket that forgets its capacity: one check fails, titles, verdicts and hint all in Chinese
    broken = (REPO / "solutions" / "token_bucket.py").read_text().replace(
        "min(self.capacity, self._tokens + elapsed * self.refill_rate)", "self._tokens + elapsed * self.refill_rate")
    assert "min(self.capacity" not in broken
    (tmp_path / "token_bucket.py").write_text(broken)
    done = subprocess.run([str(REPO / ".venv" / "bin" / "seckill"), "grade", "token_bucket", "--impl", str(tmp_path),
                           "--lang", "zh"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "令牌桶：实验 'token_bucket'" in done.stdout and "[通过] 新建的桶是满的" in done.stdout
    assert "[失败] 桶里的令牌永远不超过 capacity\n         提示：客户端空闲时令牌会一直往里加" in done.stdout
    assert "9 项检查通过了 8 项" in done.stdout and "hint:" not in done.stdout


def test_grade_follows_a_chinese_locale(stack_urls):
    done = _grade("--impl", "solutions", env={"SECKILL_LANG": "", "LC_ALL": "", "LANG": "zh_CN.UTF-8"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"(\d+) 项检查通过了 \1 项", done.stdout), done.stdout
    assert "… 通过（" not in done.stdout and " 秒)" in done.stdout  # the progress lines too


# -- the rehearsal in Chinese ----------------------------------------------------------------------------

# The seed's own words, quoted verbatim (half-width brackets and all) and marked as the seed's.
SEED_QUOTES = ["用户级(10s/5次) → IP级(10s/100次)", "主从切换(< 30s)", "超卖的3种场景：并发竞争 / Redis失败 / MQ丢失",
               "“用Redis原子操作理论上不会超卖，但MQ发送失败会丢订单，需要对账补偿。”", "水平扩展的3个方案",
               "“故障处理：Redis主从切换、MQ队列堆积告警、DB读写分离。”"]
PROOFREAD = {
    "a Latin unit after a number (30 秒, not 30 s)": r"\d\s?(?:ms|s)\b",
    "a doubled colon": r"[:：]\s*[:：]",
    "no space between Chinese and Latin letters or digits": r"[\u4e00-\u9fff][A-Za-z0-9]|[A-Za-z0-9][\u4e00-\u9fff]",
    "half-width punctuation next to Chinese": r"[\u4e00-\u9fff][,;:?!()]|[,;:?!(][\u4e00-\u9fff]",
}


def proofread(texts) -> list[str]:
    found = []
    for where, text in texts:
        for quote in SEED_QUOTES:
            text = text.replace(quote, "")
        for rule, pattern in PROOFREAD.items():
            found += [f"{where}: {rule}: …{text[max(0, m.start() - 8):m.end() + 8]}…" for m in re.finditer(pattern, text)]
    return found


def _strings(value, where=""):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}/{i}")


def test_rehearsal_chinese_is_proofread():
    from seckill.course.rehearsal_content import TEXT

    assert proofread(_strings(TEXT["zh"])) == []
    # the test of the test: the mistakes the issue names are caught
    assert len(proofread([("x", "切换用了 30 s，延迟 < 50ms"), ("y", "预减：：完成"), ("z", "用Redis预减(原子)")])) >= 4


def test_rehearsal_opens_in_the_editions_language(monkeypatch):
    from seckill.course import rehearsal
    from seckill.course.rehearsal_ui import CAPACITY_ZH, Rehearsal

    monkeypatch.setenv("SECKILL_LANG", "zh")
    assert Rehearsal(measured={}, progress={}).lang == "zh"
    monkeypatch.setenv("SECKILL_LANG", "en")
    assert Rehearsal(measured={}, progress={}).lang == "en"
    assert set(CAPACITY_ZH) == set(rehearsal.capacity({})[0])
    zh = rehearsal.seed_vs_yours_figure({}, "zh")
    assert "原文" in zh.layout.title.text


def test_chinese_notebook_text_is_proofread():
    """Every Chinese twin, code blocks and inline code aside: 30 秒, full-width punctuation, spaced Latin words."""
    texts = []
    for src in mk.sources():
        for cell in mk.read_source(src).cells:
            if mk.is_zh(cell):
                text = re.sub(r"```.*?```", "", cell.source, flags=re.S)
                texts.append((src.stem, re.sub(r"`[^`]*`", "`x`", text)))
    assert proofread(texts) == []


# -- rehearsal content and checklist items: the same hash rule, stamps in services/i18n_stamps.json ------------

def _stamp_tool():
    spec = importlib.util.spec_from_file_location("stamp_strings", REPO / "tools" / "stamp_strings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["stamp_strings"] = module
    spec.loader.exec_module(module)
    return module


def test_rehearsal_and_checklist_chinese_is_not_stale():
    assert _stamp_tool().problems() == [], "update the Chinese, then `python tools/stamp_strings.py --stamp KEY`"


def test_stamps_catch_an_edited_english_text_and_a_missing_translation():
    tool = _stamp_tool()
    texts = tool.pairs()
    stamps = json.loads(tool.STAMPS.read_text())
    key = "rehearsal/cards/kafka/model"
    edited = dict(texts, **{key: (texts[key][0] + " One more English sentence.", texts[key][1])})
    assert tool.problems(stamps, edited) == [f"{key}: the English changed after its Chinese was written (stale)"]
    item = next(k for k in texts if k.startswith("checklist/") and not k.endswith("/evidence"))
    dropped = dict(texts, **{item: (texts[item][0], "")})
    assert tool.problems(stamps, dropped) == [f"{item}: in one language only"]
