"""The house plan of services/ (imported as seckill): five rooms, and imports only point downward.

    course → chaos → measure → system → stack → bottom (config, errors, i18n, room, credentials)

cli.py and the package's own __init__ sit on top and may import anything. A lower
room importing a higher one (seckill.system importing seckill.measure, say) fails
here, with the file, the line and the import; so does a new module left outside
the rooms. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parent.parent / "services"
BOTTOM = {"config", "errors", "i18n", "i18n_zh", "credentials", "room"}
TOP = {"cli", "__init__"}
ROOMS = ["bottom", "stack", "system", "measure", "chaos", "course", "top"]


def room_of(module: str) -> str | None:
    """'seckill.system.gateway' → 'system'; None for what is not ours (or not a room)."""
    parts = module.split(".")
    if parts[0] != "seckill":
        return None
    if len(parts) == 1:
        return "top"
    if parts[1] in BOTTOM:
        return "bottom"
    if parts[1] in TOP:
        return "top"
    if parts[1] in ROOMS:
        return parts[1]
    return None


def module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(["seckill", *parts]), is_package


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every seckill import of one file, relative ones resolved."""
    name, is_package = module_name(root, path)
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from seckill import measure` names a room: count each name as the module it is
            found += [(node.lineno, f"{target}.{a.name}" if room_of(target) == "top" else target)
                      for a in node.names]
    return [(line, target) for line, target in found if target.split(".")[0] == "seckill"]


def upward_imports(root: Path) -> list[str]:
    """Every import from a lower room into a higher one, as 'file:line: room imports module (room)'."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        source_room = room_of(module_name(root, path)[0])
        for line, target in imports_of(root, path):
            target_room = room_of(target)
            if source_room and target_room and ROOMS.index(target_room) > ROOMS.index(source_room):
                problems.append(f"{path.relative_to(root)}:{line}: {source_room} imports {target} ({target_room})")
    return problems


def homeless(root: Path) -> list[str]:
    """Modules that are in no room (a new file dropped at the top of services/)."""
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*.py"))
            if room_of(module_name(root, p)[0]) is None]


def test_imports_point_only_downward():
    problems = upward_imports(SERVICES)
    assert not problems, "a lower room imports a higher one:\n" + "\n".join(problems)


def test_every_module_lives_in_a_room():
    assert not homeless(SERVICES), f"put these in a room (stack, system, measure, chaos, course): {homeless(SERVICES)}"


def test_every_room_says_what_lives_there():
    for room in ("stack", "system", "measure", "chaos", "course"):
        doc = ast.get_docstring(ast.parse((SERVICES / room / "__init__.py").read_text()))
        assert doc and len(doc) > 200, f"seckill.{room} needs a docstring saying what lives there and what it may import"


# -- the checks can fail: a small house with the mistakes they must catch ------------------------------

@pytest.fixture
def house(tmp_path):
    for room in ("stack", "system", "measure", "course"):
        (tmp_path / room).mkdir()
        (tmp_path / room / "__init__.py").write_text('"""a room"""\n')
    (tmp_path / "config.py").write_text("X = 1\n")
    (tmp_path / "measure" / "loadtest.py").write_text("from seckill.system import gateway\n")
    (tmp_path / "system" / "gateway.py").write_text("from seckill.config import X\nfrom . import sale\n")
    (tmp_path / "system" / "sale.py").write_text("from ..stack import db\n")
    return tmp_path


def test_a_clean_house_passes(house):
    assert upward_imports(house) == [] and homeless(house) == []


@pytest.mark.parametrize("mistake", [
    "from seckill.measure import loadtest",          # absolute
    "from ..measure import loadtest",                # relative
    "from seckill import measure",                   # the room itself
    "def f():\n    import seckill.course.grader",    # lazy, inside a function
], ids=["absolute", "relative", "room", "lazy"])
def test_an_upward_import_is_caught(house, mistake):
    (house / "system" / "sale.py").write_text(mistake + "\n")
    problems = upward_imports(house)
    assert len(problems) == 1 and problems[0].startswith("system/sale.py:"), problems


def test_the_bottom_may_not_reach_into_a_room(house):
    (house / "config.py").write_text("from seckill.stack import db\n")
    assert upward_imports(house) == ["config.py:1: bottom imports seckill.stack (stack)"]


def test_a_module_outside_the_rooms_is_caught(house):
    (house / "newthing.py").write_text("")
    assert homeless(house) == ["newthing.py"]
