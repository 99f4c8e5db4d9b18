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


def pick(en: str, zh: str) -> str:
    """One of two texts written side by side, for strings built from parts (chart titles with numbers)."""
    return zh if lang() == "zh" else en
