"""An unwritten or crashing lab shows as ONE line wherever it is called from: cell, thread pool, thread.

The kernel test runs real cells in a real IPython kernel (nbclient), as a learner's notebook does.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import redis
from nbclient import NotebookClient

from seckill.system import impl, lab_errors

REPO = Path(__file__).resolve().parent.parent


def _raised(call) -> BaseException:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - we want whatever it raised
        return exc
    raise AssertionError("did not raise")


def test_a_skeleton_called_from_a_pool_is_one_line_naming_file_function_and_section():
    cache = impl.load("stock", "labs").StockCache(redis.Redis(port=1))  # never connects
    with ThreadPoolExecutor(2) as pool:
        exc = _raised(lambda: list(pool.map(lambda _: cache.reserve_once(1, "u"), range(4))))
    line = lab_errors.one_line(exc)
    assert line == ('labs/stock.py: StockCache.reserve_once is not written yet — '
                    'notebooks/12_stock_reservation.ipynb, section "4 · The fix: one Lua script, `reserve_once`"')


def test_a_crash_inside_the_learners_code_names_its_line(tmp_path, monkeypatch):
    folder = tmp_path / "labs"
    folder.mkdir()
    (folder / "token_bucket.py").write_text(
        'NOTEBOOK = "notebooks/10_token_bucket.ipynb"\n\n\nclass TokenBucket:\n'
        '    def allow_request(self, tokens=1):\n        return self.tokns > 0\n')
    monkeypatch.setenv("SECKILL_LABS_DIR", str(folder))
    bucket = impl.load("token_bucket", "labs").TokenBucket()
    line = lab_errors.one_line(_raised(bucket.allow_request))
    assert line.startswith("labs/token_bucket.py line 6, in allow_request: AttributeError:"), line
    assert "notebooks/10_token_bucket.ipynb" in line


def test_the_courses_own_errors_keep_their_traceback():
    assert lab_errors.one_line(_raised(lambda: 1 / 0)) is None
    assert lab_errors.one_line(NotImplementedError("something else")) is None


def test_in_a_kernel_cells_pools_and_threads_show_one_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import threading\nfrom concurrent.futures import ThreadPoolExecutor\nimport redis\n"
        "from seckill.system import impl\ncache = impl.load('stock', 'labs').StockCache(redis.Redis(port=1))",
        "with ThreadPoolExecutor(4) as pool:\n    list(pool.map(lambda i: cache.try_reserve(1), range(8)))",
        "t = threading.Thread(target=cache.release, args=(1, 'u'))\nt.start()\nt.join()",
        "1 / 0",
    )]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute()
    pool_out, thread_out, own_out = (nb.cells[i].outputs for i in (1, 2, 3))
    assert [o.output_type for o in pool_out] == ["error"]
    assert len(pool_out[0].traceback) == 1 and "labs/stock.py: StockCache.try_reserve is not written yet" \
        in pool_out[0].traceback[0], pool_out[0].traceback
    assert "concurrent" not in pool_out[0].traceback[0]
    text = "".join(o.get("text", "") for o in thread_out)
    assert text.count("\n") == 1 and "labs/stock.py: StockCache.release is not written yet" in text, text
    assert len(own_out[0].traceback) > 1  # not ours: the usual traceback


def test_outside_a_kernel_nothing_is_installed():
    assert lab_errors.install_in_kernel() is False
    assert not getattr(threading.excepthook, "seckill_lab_errors", False)
