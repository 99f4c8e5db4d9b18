"""Generate labs/ from solutions/: the same modules with the exercises cut out.

Why generate instead of keeping two copies by hand? Because two copies drift:
a renamed argument or a fixed docstring in solutions/ would silently leave the
lab behind. Here solutions/ is the only source, and `--check` (run by
tests/test_labs_in_sync.py) fails when labs/ was not regenerated.

Markers, inside solutions/*.py:

    # BEGIN SOLUTION
    ...reference code...
    # END SOLUTION

In the lab, the block becomes one line at the marker's indentation:

    raise NotImplementedError("TokenBucket.allow_request in labs/token_bucket.py is not written yet — see notebooks/10_token_bucket.ipynb")

(the file and function named, so a one-line message can say what to write
where: services/system/lab_errors.py shows it that way in notebooks)

unless the block contains `# LAB: <code>` lines: then those lines, uncommented,
are the lab's version of the block (a starting point, or a placeholder for a
module-level constant, where a `raise` would break the import). Everything
outside the blocks (imports, signatures, docstrings) is copied unchanged.

Usage:
    python tools/make_labs.py           # write labs/
    python tools/make_labs.py --check   # exit 1 and list the files that differ
"""

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
LAB_PREFIX = "# LAB:"

HEADER = """\
# Your workspace. Generated from solutions/{name} by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/{name} and regenerate, never this file.
"""

DEF_OR_CLASS = re.compile(r"^(\s*)(?:async\s+def|def|class)\s+(\w+)")


class MarkerError(Exception):
    """A solution file whose markers cannot be turned into a lab."""


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _notebook(source: str) -> str | None:
    """The value of the module's NOTEBOOK = "..." constant, if any."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "NOTEBOOK" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            return node.value.value
    return None


def _enclosing_name(lines: list[str], block_start: int, indent: str) -> str | None:
    """'Class.method' (or 'function') for a block at `indent`, found by walking upwards."""
    names = []
    width = len(indent)
    for line in reversed(lines[:block_start]):
        match = DEF_OR_CLASS.match(line)
        if match and len(match.group(1)) < width:
            names.append(match.group(2))
            width = len(match.group(1))
            if width == 0:
                break
    return ".".join(reversed(names)) or None


def make_lab(source: str, filename: str) -> str:
    """The lab version of one solution file's text."""
    lines = source.splitlines(keepends=True)
    notebook = _notebook(source)
    out = [HEADER.format(name=filename)]
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != BEGIN:
            if line.strip() == END:
                raise MarkerError(f"{filename}:{i + 1}: {END} without {BEGIN}")
            out.append(line)
            i += 1
            continue
        indent = _indent(line)
        start = i
        i += 1
        lab_lines = []
        while i < len(lines) and lines[i].strip() != END:
            if lines[i].strip() == BEGIN:
                raise MarkerError(f"{filename}:{i + 1}: nested {BEGIN}")
            stripped = lines[i].lstrip()
            if stripped.startswith(LAB_PREFIX):
                code = stripped[len(LAB_PREFIX):].rstrip("\n")
                code = code[1:] if code.startswith(" ") else code
                lab_lines.append(_indent(lines[i]) + code + "\n" if code else "\n")
            i += 1
        if i == len(lines):
            raise MarkerError(f"{filename}:{start + 1}: {BEGIN} without {END}")
        if _indent(lines[i]) != indent:
            raise MarkerError(f"{filename}:{i + 1}: {END} is not indented like its {BEGIN}")
        i += 1  # skip the END line
        if lab_lines:
            out.extend(lab_lines)
            continue
        name = _enclosing_name(lines, start, indent)
        if name is None:
            raise MarkerError(f"{filename}:{start + 1}: a module-level block needs `{LAB_PREFIX}` lines")
        if notebook is None:
            raise MarkerError(f"{filename}: has solution blocks but no NOTEBOOK constant")
        out.append(f'{indent}raise NotImplementedError("{name} in labs/{filename} is not written yet — see {notebook}")\n')
    return "".join(out)


def expected_labs() -> dict[str, str]:
    """{file name: lab text} for every solutions/*.py."""
    return {
        path.name: make_lab(path.read_text(encoding="utf-8"), path.name)
        for path in sorted(SOLUTIONS.glob("*.py"))
    }


def drifted_files(expected: dict[str, str]) -> list[str]:
    """labs/ files that differ from what the generator writes, are missing, or have no solution."""
    drifted = []
    for name, text in expected.items():
        lab = LABS / name
        if not lab.exists() or lab.read_text(encoding="utf-8") != text:
            drifted.append(f"labs/{name}")
    drifted += [f"labs/{p.name} (no solutions/{p.name})" for p in sorted(LABS.glob("*.py")) if p.name not in expected]
    return drifted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether labs/ is up to date")
    args = parser.parse_args(argv)
    try:
        expected = expected_labs()
    except MarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        drifted = drifted_files(expected)
        if drifted:
            print("labs/ is out of date; run `python tools/make_labs.py`:", file=sys.stderr)
            for name in drifted:
                print(f"  {name}", file=sys.stderr)
            return 1
        print(f"labs/ is in sync with solutions/ ({len(expected)} files)")
        return 0
    LABS.mkdir(exist_ok=True)
    for name, text in expected.items():
        (LABS / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(expected)} files to {LABS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
