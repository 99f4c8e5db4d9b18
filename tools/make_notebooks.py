"""One source, two editions: notebooks/src/*.md -> notebooks/*.ipynb (English) and notebooks/zh/*.ipynb (中文).

Each notebook is kept as a jupytext MyST-markdown text source in notebooks/src/. Code cells are written
once; every prose (markdown) cell is English, optionally followed by its Chinese twin, a markdown cell
whose metadata is {"lang": "zh", "en": "<hash of the English text it translates>"}. The generator writes

  notebooks/<name>.ipynb     the English edition (the file names tests and README rely on)
  notebooks/zh/<name>.ipynb  the Chinese edition: the same code cells, Chinese prose, and one first
                             code cell that sets SECKILL_LANG=zh so charts and grader hints speak Chinese

Usage:
  python tools/make_notebooks.py            regenerate both editions from the sources
  python tools/make_notebooks.py --check    exit 1 if an edition differs from what its source gives
  python tools/make_notebooks.py --ingest   fold edits made to notebooks/*.ipynb (English) back into the
                                            sources; a changed English cell keeps its Chinese twin, whose
                                            hash then no longer matches: the twin is flagged stale
  python tools/make_notebooks.py --parity   list Chinese cells that are missing or stale (exit 1 if any)
  python tools/make_notebooks.py --stamp 10_token_bucket cell-03
                                            after bringing a stale twin up to date, record the English
                                            text it now translates (its hash)

To translate a cell, write its twin right after it in notebooks/src/<name>.md:

  +++ {"lang": "zh", "en": "<hash>"}

  中文……

then `--stamp <name> <cell id>` fills in the hash.

Cells are matched by their notebook cell id, which the sources keep in each cell's metadata.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
SRC = NOTEBOOKS / "src"
ZH = NOTEBOOKS / "zh"
FMT = "md:myst"

# The Chinese edition's first cell: the kernel's language for charts, grader hints and messages.
ZH_SETUP_ID = "zh-setup"
ZH_SETUP = ('# 中文版：图表、评分提示和报错都用中文（英文版没有这一格）。\n'
            'import os\n'
            'os.environ["SECKILL_LANG"] = "zh"')


def en_hash(text: str) -> str:
    """The hash a Chinese twin records of the English text it translates (whitespace at the ends ignored)."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]


def is_zh(cell) -> bool:
    return cell.get("metadata", {}).get("lang") == "zh"


@dataclass
class Problem:
    notebook: str
    cell_id: str
    what: str  # "missing" | "stale" | "orphan"

    def __str__(self) -> str:
        return f"{self.notebook}: cell {self.cell_id}: Chinese twin {self.what}"


def read_source(path: Path):
    return jupytext.read(path, fmt=FMT)


def write_source(nb, path: Path) -> None:
    nb.metadata.pop("jupytext", None)
    path.write_text(jupytext.writes(nb, fmt=FMT))


def _new_nb(cells, metadata):
    nb = nbformat.v4.new_notebook()
    nb.metadata = copy.deepcopy(metadata)
    nb.metadata.pop("jupytext", None)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _out_cell(cell, source: str, cid: str):
    if cell.cell_type == "code":
        out = nbformat.v4.new_code_cell(source)
    else:
        out = nbformat.v4.new_markdown_cell(source)
    out.id = cid
    return out


def pairs(src_nb):
    """[(english_or_code_cell, chinese_twin_or_None)] in order; a twin with no English cell before it is an orphan."""
    out, orphans = [], []
    for cell in src_nb.cells:
        if is_zh(cell):
            if out and out[-1][1] is None and out[-1][0].cell_type == "markdown":
                out[-1] = (out[-1][0], cell)
            else:
                orphans.append(cell)
        else:
            out.append((cell, None))
    return out, orphans


def editions(src_nb, name: str):
    """(english notebook, chinese notebook, [Problem]) from one source notebook."""
    kernel_meta = {k: v for k, v in src_nb.metadata.items() if k in ("kernelspec", "language_info")}
    kernel_meta.setdefault("language_info", {"name": "python"})  # jupytext leaves it out of the source
    en_cells, zh_cells, problems = [], [], []
    setup = nbformat.v4.new_code_cell(ZH_SETUP)
    setup.id = ZH_SETUP_ID
    zh_cells.append(setup)
    body, orphans = pairs(src_nb)
    for orphan in orphans:
        problems.append(Problem(name, orphan.metadata.get("en", "?"), "orphan"))
    for cell, twin in body:
        cid = cell.metadata.get("id") or f"cell-{len(en_cells):02d}"
        en_cells.append(_out_cell(cell, cell.source, cid))
        if cell.cell_type == "code":
            zh_cells.append(_out_cell(cell, cell.source, cid))
            continue
        if twin is None:
            problems.append(Problem(name, cid, "missing"))
            zh_cells.append(_out_cell(cell, cell.source, cid))
        else:
            if twin.metadata.get("en") != en_hash(cell.source):
                problems.append(Problem(name, cid, "stale"))
            zh_cells.append(_out_cell(cell, twin.source, cid))
    return _new_nb(en_cells, kernel_meta), _new_nb(zh_cells, kernel_meta), problems


def sources() -> list[Path]:
    return sorted(SRC.glob("*.md"))


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def generate(check: bool) -> list[str]:
    """Write (or with check=True compare) both editions; return the names of files that differ."""
    ZH.mkdir(exist_ok=True)
    differ = []
    for src in sources():
        en, zh, _ = editions(read_source(src), src.stem)
        for nb, path in ((en, NOTEBOOKS / f"{src.stem}.ipynb"), (zh, ZH / f"{src.stem}.ipynb")):
            text = render(nb)
            if not path.exists() or path.read_text() != text:
                differ.append(str(path.relative_to(REPO)))
                if not check:
                    path.write_text(text)
    return differ


def parity(paths: list[Path] | None = None) -> list[Problem]:
    problems = []
    for src in paths or sources():
        problems += editions(read_source(src), src.stem)[2]
    return problems


def ingest_one(ipynb: Path, src: Path) -> int:
    """Fold the English edition's cells into the source by cell id; returns how many cells changed."""
    edited = nbformat.read(ipynb, as_version=4)
    if src.exists():
        src_nb = read_source(src)
        body, _ = pairs(src_nb)
        by_id = {cell.metadata.get("id"): (cell, twin) for cell, twin in body}
    else:
        src_nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(edited.metadata))
        by_id = {}
    cells, changed = [], 0
    for cell in edited.cells:
        old, twin = by_id.get(cell.get("id"), (None, None))
        new = (nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_markdown_cell)(cell.source)
        new.metadata = {"id": cell.get("id")}
        if old is None or old.source != cell.source or old.cell_type != cell.cell_type:
            changed += 1
        cells.append(new)
        if twin is not None and cell.cell_type == "markdown":
            cells.append(twin)  # kept; its "en" hash flags it stale if the English changed
    changed += len(set(by_id) - {c.get("id") for c in edited.cells})
    for cell in cells:
        cell.pop("id", None)
    src_nb.cells = cells
    if changed or not src.exists():
        write_source(src_nb, src)
    return changed


def set_twins(src: Path, translations: dict[str, str | None]) -> int:
    """Write (or, with None, re-stamp) the Chinese twins of the cells named by id; returns how many.

    Re-stamping records the CURRENT English hash in an existing twin: do it only after checking that
    the Chinese says what the English now says."""
    src_nb = read_source(src)
    body, orphans = pairs(src_nb)
    cells, done = [], 0
    for cell, twin in body:
        cells.append(cell)
        cid = cell.metadata.get("id")
        if cell.cell_type == "markdown" and cid in translations:
            text = translations[cid] if translations[cid] is not None else (twin.source if twin else None)
            if text is None:
                raise SystemExit(f"make_notebooks: {src.stem}: cell {cid} has no Chinese twin to stamp")
            twin = nbformat.v4.new_markdown_cell(text.strip())
            twin.metadata = {"lang": "zh", "en": en_hash(cell.source)}
            done += 1
        if twin is not None:
            cells.append(twin)
    unknown = set(translations) - {c.metadata.get("id") for c, _ in body}
    if unknown:
        raise SystemExit(f"make_notebooks: {src.stem}: no English cell with id {', '.join(sorted(unknown))}")
    for cell in cells:
        cell.pop("id", None)
    src_nb.cells = cells + orphans
    write_source(src_nb, src)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if an edition is not what its source gives")
    mode.add_argument("--ingest", action="store_true", help="fold edits of notebooks/*.ipynb into the sources")
    mode.add_argument("--parity", action="store_true", help="list missing or stale Chinese cells")
    mode.add_argument("--stamp", nargs="+", metavar=("NOTEBOOK", "CELL_ID"),
                      help="after updating the Chinese twins of these cells, record the English they now match")
    args = ap.parse_args(argv)
    if args.stamp:
        name, ids = args.stamp[0], args.stamp[1:]
        src = SRC / f"{Path(name).stem}.md"
        if not src.exists() or not ids:
            print("make_notebooks: give a notebook of notebooks/src/ and cell ids, e.g. --stamp 10_token_bucket cell-03",
                  file=sys.stderr)
            return 2
        set_twins(src, dict.fromkeys(ids))
        generate(check=False)
        return 0
    if args.ingest:
        SRC.mkdir(exist_ok=True)
        for ipynb in sorted(NOTEBOOKS.glob("*.ipynb")):
            n = ingest_one(ipynb, SRC / f"{ipynb.stem}.md")
            if n:
                print(f"{ipynb.name}: {n} cells changed; their Chinese twins are now stale")
        generate(check=False)
        return 0
    if args.parity:
        problems = parity()
        for p in problems:
            print(p)
        return 1 if problems else 0
    differ = generate(check=args.check)
    if args.check and differ:
        print("make_notebooks: these editions differ from notebooks/src/ (edited by hand?): " + ", ".join(differ)
              + "\n  an edit to an English .ipynb: run `python tools/make_notebooks.py --ingest`;"
              + " otherwise `make notebooks` regenerates them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
