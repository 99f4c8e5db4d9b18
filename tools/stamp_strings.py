"""Hash stamps for texts kept side by side in two languages outside the notebooks.

The rehearsal's words (seckill.course.rehearsal_content.TEXT["en"] / ["zh"]) and the self-check list's items
(checklists/self_check.md: English line, Chinese line, evidence in both) are written in both languages in
one place. What can go stale is the Chinese after an English edit, so services/i18n_stamps.json records,
per text, the hash of the English the Chinese was last checked against; tests/test_i18n.py fails when an
English text no longer matches its stamp, or when a text exists in one language only.

  python tools/stamp_strings.py            list stale or missing texts (exit 1 if any)
  python tools/stamp_strings.py --stamp KEY ...   after updating the Chinese of KEY, record its English
  python tools/stamp_strings.py --stamp-all      record every current English text (first use only)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAMPS = REPO / "services" / "i18n_stamps.json"


def _flatten(value, where=""):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{where}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{where}/{i}")


def pairs() -> dict[str, tuple[str, str]]:
    """key -> (English, Chinese) for every paired text; a missing side is ""."""
    from seckill.course import checklist
    from seckill.course.rehearsal_content import TEXT

    en, zh = dict(_flatten(TEXT["en"])), dict(_flatten(TEXT["zh"]))
    out = {f"rehearsal{k}": (en.get(k, ""), zh.get(k, "")) for k in en.keys() | zh.keys()}
    for item in checklist.items():
        out[f"checklist/{item.id}"] = (item.en, item.zh)
        out[f"checklist/{item.id}/evidence"] = (item.evidence_en, item.evidence_zh)
    return out


def en_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]


def problems(stamps: dict | None = None, texts: dict | None = None) -> list[str]:
    stamps = json.loads(STAMPS.read_text()) if stamps is None else stamps
    texts = pairs() if texts is None else texts
    found = []
    for key, (en, zh) in sorted(texts.items()):
        if bool(en.strip()) != bool(zh.strip()):
            found.append(f"{key}: in one language only")
        elif en.strip() and stamps.get(key) != en_hash(en):
            found.append(f"{key}: the English changed after its Chinese was written (stale)")
    found += [f"{key}: stamped but gone" for key in sorted(set(stamps) - set(texts))]
    return found


def main(argv: list[str]) -> int:
    stamps = json.loads(STAMPS.read_text()) if STAMPS.exists() else {}
    texts = pairs()
    if argv[:1] == ["--stamp-all"]:
        stamps = {k: en_hash(en) for k, (en, _zh) in texts.items() if en.strip()}
    elif argv[:1] == ["--stamp"] and argv[1:]:
        for key in argv[1:]:
            if key not in texts:
                print(f"stamp_strings: no text {key!r}", file=sys.stderr)
                return 2
            stamps[key] = en_hash(texts[key][0])
    else:
        found = problems(stamps, texts)
        print("\n".join(found) or "every paired text is up to date")
        return 1 if found else 0
    STAMPS.write_text(json.dumps(dict(sorted(stamps.items())), indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
