"""The learner's language for seckill's messages, charts and grader hints: "en" or "zh".

Chosen, first match wins, by: an explicit ``--lang`` (``set_lang``), the ``SECKILL_LANG`` environment
variable (the Chinese notebooks set it in their first cell), then the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``: ``zh_CN.UTF-8`` and friends mean Chinese). Anything else is English.

``tr(english)`` returns the Chinese translation of an English string from the catalogue in
:mod:`seckill.i18n_zh` when the language is Chinese, otherwise the English unchanged. The catalogue is
keyed by the English text itself, so an English string edited at its call site no longer finds its old
translation: it shows in English until translated again, and tests/test_i18n.py fails meanwhile
(the same staleness rule the notebooks' Chinese twins follow with their hashes).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

LANGS = ("en", "zh")


def _normalise(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("zh"):
        return "zh"
    if value.startswith("en") or value in ("c", "posix"):
        return "en"
    return None


def lang() -> str:
    """"zh" or "en", from SECKILL_LANG, then LC_ALL / LC_MESSAGES / LANG."""
    for var in ("SECKILL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        found = _normalise(os.environ.get(var))
        if found:
            return found
    return "en"


def set_lang(value: str) -> str:
    """Set the language for this process and the servers it starts (SECKILL_LANG); ValueError if unknown."""
    found = _normalise(value)
    if found is None:
        raise ValueError(f"unknown language {value!r}: use one of {', '.join(LANGS)}")
    os.environ["SECKILL_LANG"] = found
    # `make lab LANG=zh` puts a bare "zh" in LANG, which is no locale: the servers and Jupyter started
    # from here get a real one instead (the language itself now lives in SECKILL_LANG).
    for var in ("LANG", "LC_ALL", "LC_MESSAGES"):
        if os.environ.get(var, "").lower() in LANGS:
            os.environ[var] = "C.UTF-8"
    return found


def jupyterlab_locale(lang_: str | None = None) -> str:
    """JupyterLab's interface language for ours: zh_CN (jupyterlab-language-pack-zh-cn) or en."""
    return "zh_CN" if (lang_ or lang()) == "zh" else "en"


def tr(english: str, lang_: str | None = None) -> str:
    """The text in the current language: Chinese from the catalogue when there is one, else the English."""
    if (lang_ or lang()) != "zh" or not english:
        return english
    from seckill.i18n_zh import ZH
    return ZH.get(english, english)


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_CJK = "\u3000-\u303f\u4e00-\u9fff\uff01-\uff0f\uff1a-\uff1f"
_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


@lru_cache(maxsize=1)
def _templates() -> list[tuple[list[str], re.Pattern, dict[str, int], str]]:
    """(literal parts, pattern, placeholder -> group, Chinese) for every catalogue entry with a {placeholder}, most
    specific first (the most literal text), so "no product {id} in PostgreSQL" wins over "{exc}"."""
    from seckill.i18n_zh import ZH

    found = []
    for english, chinese in ZH.items():
        names = _PLACEHOLDER.findall(english)
        if not names or chinese == english:  # "{exc}{log_reason(log_path)}" would only copy the message
            continue
        groups: dict[str, int] = {}
        pattern = ""
        for literal, name in zip(_PLACEHOLDER.split(english), names + [None]):
            pattern += re.escape(literal)
            if name is not None:
                if name in groups:
                    pattern += f"(?P={'g%d' % groups[name]})"
                else:
                    groups[name] = len(groups)
                    pattern += f"(?P<g{groups[name]}>.*?)"
        literal_chars = len(_PLACEHOLDER.sub("", english))
        literals = [part for part in _PLACEHOLDER.split(english) if part]
        found.append((literal_chars, literals, re.compile(pattern, re.S), groups, chinese))
    found.sort(key=lambda entry: -entry[0])
    return [entry[1:] for entry in found]


def tr_message(message: str, lang_: str | None = None, _depth: int = 0) -> str:
    """A whole message in the current language, also one already filled in (an error's f-string).

    An error is raised as ``SaleError(f"no product {product_id} in PostgreSQL")`` and reaches the user as
    text; the catalogue holds its template, keyed by the f-string's own source ("no product {product_id}
    in PostgreSQL"), and the values found in the message are put into the Chinese template. A message
    with no entry stays English (tests/test_i18n.py lists the raise sites that have none). A filled-in
    value that is itself a sentence ("another process", a nested error) is translated the same way."""
    if (lang_ or lang()) != "zh" or not message:
        return message
    exact = tr(message, "zh")
    if exact != message:
        return exact
    for literals, pattern, groups, chinese in _templates():
        # every literal part must be in the message: cheap, and spares the regex most templates
        match = pattern.fullmatch(message) if all(part in message for part in literals) else None
        if match:
            def value(placeholder: re.Match) -> str:
                if placeholder.group(0) not in groups:
                    return placeholder.group(0)
                text = match.group(f"g{groups[placeholder.group(0)]}")
                # a sentence, not an id ("free", "ok" are keys too): translated, once nested at most
                if " " in text and text != message and _depth < 2:
                    return tr_message(text, "zh", _depth + 1)
                return text
            # a Chinese value in a slot spaced for a Latin one: no space between two Chinese characters
            return _CJK_SPACE.sub("", _PLACEHOLDER.sub(value, chinese))
    return message


def N_(english: str) -> str:
    """Mark a string for the catalogue without translating it now: it is shown later through ``tr``.

    For labels kept as English ids in data (a check's group, a constant) and translated where they are
    displayed (``tr``), or a message made by an f-string (``tr_message`` when shown); tests/test_i18n.py
    requires a translation for every string marked so, as for ``tr``.
    """
    return english


def pick(en: str, zh: str) -> str:
    """One of two texts written side by side, for strings built from parts (chart titles with numbers)."""
    return zh if lang() == "zh" else en
