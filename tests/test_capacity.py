"""The capacity model (pure arithmetic), the calculator built on it, the diagram and the course map."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seckill.course import calculator, capacity, coursemap, diagram
from seckill.course.capacity import Capacities, CapacityError, Scenario
from seckill.errors import SeckillError

REPO = Path(__file__).resolve().parent.parent


# -- the model ----------------------------------------------------------------------------

def test_seed_scenario_is_the_default():
    sc = Scenario()
    assert (sc.client_qps, sc.peak_qps, sc.items, sc.sell_out_s) == (50_000, 10_000, 100_000, 10)
    cap = Capacities()
    assert (cap.nginx_rps, cap.app_rps, cap.redis_ops_per_s, cap.db_writes_per_s) == (15_000, 1_000, 100_000, 1_000)
    assert all(source.startswith("seed") for source in cap.sources.values())


def test_seed_plan_finds_the_app_tier_and_counts_instances():
    p = capacity.plan()
    demand = {x.name: x.demand for x in p.layers}
    assert demand == {"nginx": 50_000, "app": 10_000, "redis": 30_000, "db": pytest.approx(100_000 / 120)}
    instances = {x.name: x.instances for x in p.layers}
    assert instances == {"nginx": 4, "app": 10, "redis": 1, "db": 1}
    assert p.bottleneck.name == "app"
    assert [x.name for x in p.layers if x.bottleneck] == ["app"]
    assert "10 instances" in p.verdict("en") and "10 个实例" in p.verdict("zh")


@pytest.mark.parametrize("demand,capacity_of_one", [(10_000, 1_000), (10_001, 1_000), (9_999, 1_000),
                                                     (50_000, 15_000), (1, 100_000)])
def test_instances_are_the_ceiling_of_demand_over_capacity(demand, capacity_of_one):
    p = capacity.plan(Scenario(client_qps=demand, peak_qps=demand), Capacities(app_rps=capacity_of_one))
    assert p.layer("app").instances == math.ceil(demand / capacity_of_one)
    assert p.layer("nginx").instances == math.ceil(demand / 15_000)


def test_bottleneck_moves_when_a_capacity_changes():
    assert capacity.plan().bottleneck.name == "app"
    assert capacity.plan(cap=Capacities(app_rps=25_000)).bottleneck.name == "nginx"
    assert capacity.plan(cap=Capacities(app_rps=25_000, nginx_rps=60_000)).bottleneck.name == "db"
    assert capacity.plan(cap=Capacities(app_rps=25_000, nginx_rps=60_000, redis_ops_per_s=20_000)
                         ).bottleneck.name == "redis"


def test_db_direct_sends_every_request_to_postgres_and_skips_redis():
    p = capacity.plan(Scenario(design="db-direct"))
    assert p.layer("db").demand == 10_000 and p.layer("db").instances == 10
    assert p.layer("redis").demand == 0 and p.layer("redis").instances == 0
    assert p.bottleneck.name == "db"  # ties with the app tier go to the layer that is harder to multiply
    assert p.queue_peak == 0


def test_the_queue_shaves_the_peak():
    p = capacity.plan()
    assert p.queue_peak == pytest.approx(90_000)          # 100,000 orders in 10 s, 1,000/s written
    assert p.drain_s == pytest.approx(100)
    assert p.queue_depth(0) == 0
    assert p.queue_depth(10) == pytest.approx(90_000)
    assert p.queue_depth(55) == pytest.approx(45_000)
    assert p.queue_depth(100) == pytest.approx(0) and p.queue_depth(500) == 0
    # a drain deadline as short as the sale: PostgreSQL must keep up, the bottleneck moves there
    tight = capacity.plan(Scenario(drain_target_s=10), Capacities(app_rps=25_000, nginx_rps=60_000))
    assert tight.layer("db").demand == 10_000 and tight.bottleneck.name == "db"


def test_too_few_requests_stretch_the_sale_with_a_note():
    p = capacity.plan(Scenario(items=200_000))
    assert p.scenario.sale_s == 20
    assert any("lasts 20 s" in note for note in p.notes)


@pytest.mark.parametrize("field,value", [("client_qps", 0), ("peak_qps", -5), ("items", 0), ("sell_out_s", 0),
                                         ("drain_target_s", -1), ("peak_qps", float("nan")),
                                         ("items", "many")])
def test_bad_scenario_inputs_are_rejected_with_their_name(field, value):
    with pytest.raises(CapacityError, match=field):
        capacity.plan(Scenario(**{field: value}))


@pytest.mark.parametrize("field", ["nginx_rps", "app_rps", "redis_ops_per_s", "db_writes_per_s"])
def test_zero_or_negative_capacity_is_rejected(field):
    for value in (0, -100):
        with pytest.raises(CapacityError, match=f"{field} must be greater than 0"):
            capacity.plan(cap=Capacities(**{field: value}))


def test_inconsistent_inputs_are_rejected():
    with pytest.raises(CapacityError, match="cannot exceed client_qps"):
        capacity.plan(Scenario(client_qps=5_000, peak_qps=10_000))
    with pytest.raises(CapacityError, match="design 'kafka'"):
        capacity.plan(Scenario(design="kafka"))
    assert issubclass(CapacityError, SeckillError)  # the CLI and notebooks show it as one line


# -- the learner's numbers replace the seed's -----------------------------------------------

MEASURED = {
    "tiers": {"flask": {"requests_per_s": 420.0, "source": "/x/results/20261125-flask.json"},
              "fastapi": {"requests_per_s": 2_600.0, "source": "/x/results/bench-20261125.json"}},
    "ceilings": {"nginx_return_200_rps": 31_000.0, "redis_lua_ops_per_s": 85_000.0,
                 "postgres_tx_per_s": 1_900.0, "source": "/x/results/bench-20261125.json"},
}


def test_from_results_uses_measurements_and_says_whose():
    cap = capacity.from_results(MEASURED)
    assert (cap.nginx_rps, cap.app_rps, cap.redis_ops_per_s, cap.db_writes_per_s) == (31_000, 420, 85_000, 1_900)
    assert cap.sources["app"] == "yours (20261125-flask.json)"
    assert cap.sources["db"] == "yours (bench-20261125.json)"
    fast = capacity.from_results(MEASURED, app_tier="fastapi")
    assert fast.app_rps == 2_600 and fast.sources["app"].startswith("yours")
    # a tier not measured: the seed's roadmap figure, labelled as the seed's
    x4 = capacity.from_results(MEASURED, app_tier="flask-x4")
    assert x4.app_rps == 5_000 and x4.sources["app"].startswith("seed")
    assert capacity.measured_tiers(MEASURED) == ["flask", "fastapi"]


def test_from_results_without_measurements_is_the_seed():
    cap = capacity.from_results({"tiers": {}, "ceilings": {}})
    assert cap == Capacities(sources=cap.sources)
    assert all(s.startswith("seed") for s in cap.sources.values())
    with pytest.raises(CapacityError, match="app tier 'kafka'"):
        capacity.from_results({}, app_tier="kafka")


def test_from_results_reads_a_results_folder(tmp_path, monkeypatch):
    """End to end through seckill.measure.results: a bench record on disk becomes the calculator's numbers."""
    from seckill.measure import results

    record = {"generator": "wrk", "tiers": [{"tier": "flask", "requests_per_s": 777.0, "p50_ms": 5, "p99_ms": 30}],
              "ceilings": {"nginx_return_200_rps": 20_000.0, "redis_lua_ops_per_s": 90_000.0,
                           "postgres_tx_per_s": 1_500.0}}
    path = results.save("bench", "", record, directory=tmp_path)
    monkeypatch.setenv("SECKILL_RESULTS_DIR", str(tmp_path))
    cap = capacity.from_results()
    assert cap.app_rps == 777 and cap.db_writes_per_s == 1_500
    assert cap.sources["nginx"] == f"yours ({path.name})"


# -- the calculator's figure and widgets ---------------------------------------------------------

def test_figure_highlights_the_bottleneck_and_labels_its_axes():
    p = capacity.plan()
    fig = calculator.figure(p)
    demand, cap = fig.data
    assert len(demand.x) == 4 and list(cap.y) == [15_000, 1_000, 100_000, 1_000]
    colours = list(demand.marker.color)
    assert colours[1] == calculator.BOTTLENECK_COLOUR and colours.count(calculator.BOTTLENECK_COLOUR) == 1
    assert "bottleneck" in fig.layout.title.text and fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert fig.layout.yaxis.type == "log"
    assert "app tier" in calculator.verdict_html(p)


def test_calculator_widgets_drive_the_model():
    calc = calculator.Calculator(measured={})
    assert calc.plan.bottleneck.name == "app" and calc.numbers.value == "seed"
    calc.set(design="db-direct")
    assert calc.plan.bottleneck.name == "db"
    calc.set(db=20_000)                                    # typing a capacity
    assert calc.plan.bottleneck.name == "app"
    assert calc.capacities().sources["db"].startswith("typed by you")
    calc.set(peak_qps=60_000)                              # more than clients send
    assert calc.plan is None and "cannot exceed client_qps" in calc.error
    calc.set(peak_qps=10_000)
    assert calc.plan is not None and calc.error is None
    calc._reload_capacities()                              # the reset button
    assert calc.cap_inputs["db"].value == 1_000 and calc.capacities().sources["db"].startswith("seed")


def test_calculator_prefers_my_numbers_when_there_are_some():
    calc = calculator.Calculator(measured=MEASURED)
    assert calc.numbers.value == "mine"
    assert calc.capacities().app_rps == 420 and calc.capacities().sources["app"].startswith("yours")
    calc.set(app_tier="fastapi")
    assert calc.capacities().app_rps == 2_600
    calc.set(numbers="seed")
    assert calc.capacities().app_rps == 25_000 and calc.capacities().sources["nginx"].startswith("seed")


# -- the diagram and the course map ---------------------------------------------------------------

def test_every_box_of_the_diagram_names_files_that_exist():
    for key, box in diagram.BOXES.items():
        assert box.modules, key
        for module in box.modules:
            assert (REPO / module).is_file(), f"box {key} names {module}, which does not exist"


def test_diagram_is_an_svg_with_every_box_and_both_languages():
    import xml.etree.ElementTree as ET

    svg = diagram.architecture(client_qps=42_000).svg
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    for word in ("nginx", "Redis", "RabbitMQ", "PostgreSQL", "order service", "42,000 QPS",
                 "快速路径", "异步路径", "预减", "削峰", "秒杀 = 削峰 + 异步 + 预减"):
        assert word in text, word
    assert len(root.findall(".//{http://www.w3.org/2000/svg}g")) == len(diagram.BOXES)


def _notebook(folder: Path, name: str, heading: str) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [heading, "\n", "text"]}]
    (folder / name).write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_course_map_lists_notebooks_in_order_with_grades(tmp_path):
    _notebook(tmp_path, "12_stock_reservation.ipynb", "# 12 · Reserving stock in Redis")
    _notebook(tmp_path, "00_start_here.ipynb", "# 00 · Start here")
    _notebook(tmp_path, "10_token_bucket.ipynb", "# 10 · The token bucket")
    _notebook(tmp_path, "55_new_thing.ipynb", "no heading here")
    progress = {"stock": {"passed": True, "score": "6/6", "date": "2026-11-25T03:00:00+00:00", "impl": "labs"},
                "token_bucket": {"passed": False, "score": "2/5", "date": "2026-11-24T03:00:00+00:00",
                                 "impl": "labs"}}
    rows = coursemap.entries(tmp_path, progress)
    assert [r["notebook"] for r in rows] == ["00_start_here", "10_token_bucket", "12_stock_reservation",
                                             "55_new_thing"]
    by = {r["notebook"]: r for r in rows}
    assert by["00_start_here"]["goal"] == "Start here" and by["00_start_here"]["lab"] == ""
    assert by["12_stock_reservation"]["lab"] == "stock" and "passed ✔ 6/6" in by["12_stock_reservation"]["grade"]
    assert "not passed yet 2/5" in by["10_token_bucket"]["grade"]
    assert by["10_token_bucket"]["目标"]
    assert by["55_new_thing"]["goal"] == "new thing"
    html = coursemap.CourseMap(tmp_path, progress)._repr_html_()
    assert html.count("<tr>") == 5 and "6/6" in html


def test_course_map_of_the_real_notebooks_covers_every_graded_lab():
    from seckill.course import grader

    rows = coursemap.entries(progress={})
    assert rows[0]["notebook"] == "00_start_here" and rows[1]["notebook"] == "01_requirements_and_capacity"
    labs = [r["lab"] for r in rows if r["lab"]]
    assert labs == list(grader.LABS)
    assert all("not graded yet" in r["grade"] for r in rows if r["lab"])


def test_calculator_shows_the_chart_first_and_carries_a_static_copy():
    """The chart sits above the sliders (seen while dragging); without a kernel its output still reads."""
    from seckill.course import calculator

    calc = calculator.Calculator({})
    assert calc.widget.children[0] is calc.output
    bundle = calc._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "VBox" not in bundle["text/plain"]
    assert "text/html" not in bundle  # the static copy is its own output, kept current by its display_id
    static = calc.static_bundle()
    assert "<script" not in static["text/html"] and "The bottleneck is app tier" in static["text/html"]
    assert static["text/html"].count("<tr>") == 1 + len(calc.plan.layers)  # header + one row per layer
    assert static["text/plain"].startswith("The bottleneck is app tier")
    calc.set(peak_qps=60_000)                              # a bad input: the copy says what is wrong
    assert "cannot exceed client_qps" in calc.static_bundle()["text/html"]
    assert "seckill-static" in calc.static_bundle()["text/html"]


def test_calculator_static_copy_follows_the_latest_verdict_in_a_kernel(tmp_path):
    """In a real kernel: change the design after the calculator is shown; the SAVED output (what GitHub,
    nbconvert or a reopened notebook without a kernel shows) names the new bottleneck, and there is still
    exactly one live widget (the static copy is a separate display, updated by its display_id)."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "from seckill.course import calculator\ncalc = calculator.show({})",   # the seed's numbers: app tier
        "calc.set(design='db-direct')",                                 # the bottleneck moves to PostgreSQL
        "calc.set(peak_qps=20_000)",
    )]
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    NotebookClient(nb, km=km, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], outputs
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, "exactly one live widget"
    statics = [o for o in outputs if "seckill-static" in o.get("data", {}).get("text/html", "")]
    assert len(statics) == 1, [o.get("data", {}).keys() for o in outputs]
    static = statics[0]["data"]["text/html"]
    assert "The bottleneck is PostgreSQL" in static and "The bottleneck is app tier" not in static, static
    assert "20,000" in static  # the peak of the last change, not only the design
    assert statics[0]["data"]["text/plain"].startswith("The bottleneck is PostgreSQL")
    # nothing but the live widget (and a one-line note) carries the first verdict either
    assert "The bottleneck is app tier" not in json.dumps(outputs)
