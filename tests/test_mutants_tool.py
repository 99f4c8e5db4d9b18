"""tools/mutants.py --only: grades just the chosen mutants, keeps every other result, loses nothing.

No servers and no cosmic-ray here: a stand-in `cosmic-ray exec` marks every pending mutant of the session
it is given as graded, the way the real one does.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SCHEMA = """
CREATE TABLE work_items (job_id VARCHAR NOT NULL PRIMARY KEY);
CREATE TABLE mutation_specs (module_path VARCHAR, operator_name VARCHAR, operator_args JSON, occurrence INTEGER,
    start_pos_row INTEGER, start_pos_col INTEGER, end_pos_row INTEGER, end_pos_col INTEGER,
    definition_name VARCHAR, job_id VARCHAR NOT NULL PRIMARY KEY REFERENCES work_items (job_id));
CREATE TABLE work_results (worker_outcome VARCHAR(9), output TEXT, test_outcome VARCHAR(11), diff TEXT,
    job_id VARCHAR NOT NULL PRIMARY KEY REFERENCES work_items (job_id));
"""

FAKE_EXEC = """import sqlite3, sys
_cmd, _cfg, session = sys.argv[1:4]
with sqlite3.connect(session) as db:
    db.execute("INSERT INTO work_results SELECT 'normal', '', 'killed', 'graded again', job_id FROM work_items "
               "WHERE job_id NOT IN (SELECT job_id FROM work_results)")
"""


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("mutants_tool", REPO / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutants_tool"] = module
    spec.loader.exec_module(module)
    return module


def session_with(path: Path) -> Path:
    """Four mutants, job ids in a different order than their lines; number 2 (line 20) already graded."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        for job, row in (("d", 10), ("a", 20), ("c", 30), ("b", 40)):
            db.execute("INSERT INTO work_items VALUES (?)", (job,))
            db.execute("INSERT INTO mutation_specs (operator_name, occurrence, start_pos_row, start_pos_col, job_id) "
                       "VALUES ('core/AddNot', 0, ?, 4, ?)", (row, job))
        db.execute("INSERT INTO work_results VALUES ('normal', '', 'survived', 'first grading', 'a')")
    return path


def results(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return {job: (outcome, diff) for job, outcome, diff in
                db.execute("SELECT job_id, test_outcome, diff FROM work_results")}


def fake_exe(tmp_path: Path) -> Path:
    exe = tmp_path / "cosmic-ray"
    exe.write_text(f"#!{sys.executable}\n{FAKE_EXEC}")
    exe.chmod(0o755)
    return exe


def test_only_grades_the_chosen_mutants_and_keeps_the_others(mutants, tmp_path):
    session = session_with(tmp_path / "lab.sqlite")
    with sqlite3.connect(session) as db:
        assert mutants.numbered(db) == ["d", "a", "c", "b"]  # by line, not by job id
    mutants.exec_selected(fake_exe(tmp_path), tmp_path / "lab.toml", session, (3, 4))
    assert results(session) == {"a": ("survived", "first grading"), "c": ("killed", "graded again"),
                                "b": ("killed", "graded again")}
    with sqlite3.connect(session) as db:  # nothing of the session was lost on the way
        assert db.execute("SELECT count(*) FROM work_items").fetchone()[0] == 4
        assert db.execute("SELECT count(*) FROM mutation_specs").fetchone()[0] == 4
    assert not session.with_suffix(".only.sqlite").exists()


def test_only_grades_an_already_graded_mutant_again(mutants, tmp_path):
    session = session_with(tmp_path / "lab.sqlite")
    mutants.exec_selected(fake_exe(tmp_path), tmp_path / "lab.toml", session, (2, 2))
    assert results(session) == {"a": ("killed", "graded again")}


def test_without_only_every_pending_mutant_is_graded(mutants, tmp_path):
    session = session_with(tmp_path / "lab.sqlite")
    mutants.exec_selected(fake_exe(tmp_path), tmp_path / "lab.toml", session, None)
    assert set(results(session)) == {"a", "b", "c", "d"} and results(session)["a"][1] == "first grading"


def test_only_out_of_range_or_malformed_is_one_line(mutants, tmp_path, capsys):
    session = session_with(tmp_path / "lab.sqlite")
    with pytest.raises(SystemExit, match="this lab has 4 mutants"):
        mutants.exec_selected(fake_exe(tmp_path), tmp_path / "lab.toml", session, (3, 9))
    with pytest.raises(ValueError):
        mutants.parse_only("5-2")
    assert mutants.parse_only("7") == (7, 7) and mutants.parse_only("31-56") == (31, 56)
    assert mutants.main(["token_bucket", "stock", "--only", "1-2"]) == 2
    assert "name that lab" in capsys.readouterr().err
