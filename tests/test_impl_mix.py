"""Partial progress runs: with impl "labs" the running system takes each piece from labs/ once the
learner started it, from solutions/ while it is the untouched skeleton, and says which in one line.

The learner's workspace here is a copy (SECKILL_LABS_DIR), never the repository's labs/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seckill.measure import burst
from seckill.system import impl, tiers
from seckill.system.sale import create_sale

from conftest import BURST_LIMITS

REPO = Path(__file__).resolve().parent.parent

# A started token bucket whose behaviour no reference could have: it refuses everything.
REFUSING_BUCKET = '''
NOTEBOOK = "notebooks/10_token_bucket.ipynb"


class TokenBucket:
    def __init__(self, capacity, refill_rate, clock=None):
        self.capacity, self.refill_rate = capacity, refill_rate

    def allow_request(self, tokens=1):
        return False
'''


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh learner's labs/ (the generated skeletons), used by this process and every tier it starts."""
    folder = tmp_path / "labs"
    folder.mkdir()
    for path in (REPO / "labs").glob("*.py"):
        shutil.copy(path, folder / path.name)
    monkeypatch.setenv("SECKILL_LABS_DIR", str(folder))
    return folder


def test_skeletons_run_the_reference_and_a_started_piece_runs_the_learners(workspace):
    assert not any(impl.started(p) for p in impl.PIECES)
    assert impl.describe("labs") == "token_bucket, rate_limit, stock, producer, consumer: reference (solutions/)"
    (workspace / "token_bucket.py").write_text(REFUSING_BUCKET)
    assert impl.started("token_bucket") and not impl.started("stock")
    assert impl.describe("labs") == ("token_bucket: yours (labs/) · "
                                     "rate_limit, stock, producer, consumer: reference (solutions/)")
    assert Path(impl.running("token_bucket", "labs").__file__) == workspace / "token_bucket.py"
    assert Path(impl.running("stock", "labs").__file__) == REPO / "solutions" / "stock.py"
    # The notebook's own experiments never substitute: the learner sees their skeleton.
    assert Path(impl.load("stock", "labs").__file__) == workspace / "stock.py"
    # Any edit counts as started (working on it), even a half-written one.
    (workspace / "stock.py").write_text((workspace / "stock.py").read_text() + "\n# started\n")
    assert impl.started("stock")
    assert impl.describe("solutions") == "all pieces: reference (solutions/)"


def test_a_tier_runs_the_learners_bucket_and_the_reference_for_unstarted_labs(s, stack_urls, workspace, capsys):
    """Lab 10 done, labs 11-14 untouched: no server error (the skeletons are not run), and the bucket
    that refuses everything is really the one in front (every request limited)."""
    (workspace / "token_bucket.py").write_text(REFUSING_BUCKET)
    with tiers.running("flask", impl_name="labs", limits=BURST_LIMITS) as state:
        create_sale(s, 521, 10, force=True)
        result = burst.buy_burst(state["base_url"], 521, users=50, requests=50, concurrency=10)
    assert result.counts["limited"] == 50 and result.counts["server_error"] == 0, result.summary()
    assert state["pieces"].startswith("token_bucket: yours")
    out = capsys.readouterr()
    assert "• code: token_bucket: yours (labs/) · rate_limit, stock, producer, consumer: reference" in out.out
    assert out.err == ""  # progress is not an error
    assert tiers.current(s) is None  # the block stopped it


def test_a_tier_sells_with_the_learners_correct_bucket(s, stack_urls, workspace):
    shutil.copy(REPO / "solutions" / "token_bucket.py", workspace / "token_bucket.py")
    with tiers.running("flask", impl_name="labs", limits=BURST_LIMITS, out=None) as state:
        create_sale(s, 522, 20, force=True)
        result = burst.buy_burst(state["base_url"], 522, users=100, requests=100, concurrency=20)
    assert result.counts["success"] == 20 and result.counts["server_error"] == 0, result.summary()


def test_running_stops_the_tier_when_the_block_fails(s, stack_urls):
    with pytest.raises(ZeroDivisionError):
        with tiers.running("flask", impl_name="solutions", limits=BURST_LIMITS, out=None):
            1 / 0
    assert tiers.current(s) is None


def test_a_started_but_unfinished_piece_runs_and_the_block_ends_in_one_line(s, stack_urls, workspace):
    """The learner began labs/stock.py (any edit) but reserve_once still raises: the tier runs THEIR code
    (500s), and the `with` block ends in one line naming the function, the file and the section."""
    stock = workspace / "stock.py"
    stock.write_text(stock.read_text() + "\n# I started here\n")
    with pytest.raises(tiers.LabCodeError) as caught:
        with tiers.running("flask", impl_name="labs", limits=BURST_LIMITS, out=None) as state:
            create_sale(s, 523, 10, force=True)
            result = burst.buy_burst(state["base_url"], 523, users=20, requests=20, concurrency=5)
    assert result.counts["server_error"] == 20, result.summary()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("gateway ran labs/stock.py: StockCache.reserve_once is not written yet — "
                              "notebooks/12_stock_reservation.ipynb, section"), message
    assert caught.value._render_traceback_() == [f"\x1b[31mLabCodeError\x1b[0m: {message}"]
    assert tiers.current(s) is None
