"""The capacity calculator of notebook 01: sliders in, a demand-vs-capacity chart and a verdict out.

A thin ipywidgets face on :mod:`seckill.course.capacity` (which holds all the
arithmetic and is unit-tested on its own). The chart is a plain plotly figure
shown inside an ``Output`` widget and redrawn on every change, so nothing
depends on plotly's FigureWidget; the default state is drawn at once when the
calculator is built, so a notebook run without a browser (nbclient, CI) still
gets the first chart and verdict.

Displaying a calculator writes two outputs: the live widget, and a static copy
(plain HTML: the verdict and a bar chart) with its own ``display_id``. Every
redraw replaces the static copy by ``update_display``, so the saved notebook
carries the LATEST verdict for viewers without a kernel (GitHub, nbconvert, a
reopened file); the widget's own output is never touched, so the sliders are not
re-rendered. While the widget is on the page a CSS rule hides the copy.

    from seckill.course import calculator
    calculator.show()            # the learner's measurements where results/ has them, the seed's otherwise
"""

from __future__ import annotations

import html
import uuid

import plotly.graph_objects as go

from seckill.course import capacity
from seckill.course.capacity import Capacities, CapacityError, Plan, Scenario

DEMAND_COLOUR = "#1f77b4"
BOTTLENECK_COLOUR = "#d62728"
CAPACITY_COLOUR = "#b0b0b0"
# Where the live calculator is on the page (JupyterLab, or nbconvert's HTML with the saved widget state),
# its static copy in the same cell's outputs is hidden; where it is not (GitHub strips <style>, a viewer
# without widgets, a widget that failed to load), the copy shows.
HIDE_COPY_CSS = ("<style>.jp-OutputArea:has(.seckill-calculator) .jp-OutputArea-child:has(.seckill-static)"
                 "{display:none}</style>")


def figure(plan: Plan) -> go.Figure:
    """Grouped bars per layer: demand vs what one instance takes; the bottleneck's demand in red."""
    x = [f"{layer.label}<br>{layer.label_zh}" for layer in plan.layers]
    demand_text = [("not used · 未使用" if layer.instances == 0 else
                    f"{layer.demand:,.0f}<br>needs {layer.instances} · 需 {layer.instances} 个")
                   for layer in plan.layers]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=x, y=[layer.demand or None for layer in plan.layers], name="demand · 需求",
        marker_color=[BOTTLENECK_COLOUR if layer.bottleneck else DEMAND_COLOUR for layer in plan.layers],
        text=demand_text, textposition="outside",
        customdata=[[layer.unit, layer.utilisation] for layer in plan.layers],
        hovertemplate="%{x}<br>demand %{y:,.0f} %{customdata[0]}<br>%{customdata[1]:.0%} of one instance"
                      "<extra></extra>"))
    fig.add_trace(go.Bar(
        x=x, y=[layer.capacity for layer in plan.layers], name="capacity of one instance · 单实例容量",
        marker_color=CAPACITY_COLOUR, text=[f"{layer.capacity:,.0f}" for layer in plan.layers],
        textposition="outside", customdata=[[layer.source] for layer in plan.layers],
        hovertemplate="%{x}<br>one instance: %{y:,.0f}/s<br>source: %{customdata[0]}<extra></extra>"))
    b = plan.bottleneck
    fig.update_layout(
        title=f"Demand vs capacity per layer · 各层需求与容量 — bottleneck 瓶颈: {b.label} ({b.utilisation:.1f}×)",
        barmode="group", height=460, margin={"t": 70, "b": 40},
        yaxis={"type": "log", "title": "per second, log scale (requests, Redis calls or writes) · 每秒"},
        xaxis={"title": "layer · 层"}, legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig


def verdict_html(plan: Plan) -> str:
    e = html.escape
    notes = "".join(f"<li>{e(n)}</li>" for n in plan.notes)
    return (f'<div class="seckill-verdict"><p><b>{e(plan.verdict("en"))}</b><br>{e(plan.verdict("zh"))}</p>'
            + (f"<ul>{notes}</ul>" if notes else "")
            + "<p><small>Red bar: the bottleneck, the layer whose one instance is the most overloaded; "
              "a red bar above its grey bar means that layer needs more instances (or a faster design). "
              "· 红色柱为瓶颈：红柱高出灰柱，说明这一层需要更多实例或更快的方案。</small></p></div>")


def sources_html(cap: Capacities) -> str:
    e = html.escape
    rows = "".join(f"<tr><td style='text-align:left'>{e(capacity.LAYER_LABELS[k][0])}</td>"
                   f"<td>{cap.of(k):,.0f}</td><td style='text-align:left'>{e(cap.sources.get(k, '?'))}</td></tr>"
                   for k in capacity.LAYERS)
    return ("<table><thead><tr><th style='text-align:left'>layer · 层</th><th>one instance /s</th>"
            f"<th style='text-align:left'>whose number · 来源</th></tr></thead><tbody>{rows}</tbody></table>")


class Calculator:
    """The widgets, the current plan, and the redraw that ties them together."""

    def __init__(self, measured: dict | None = None, scenario: Scenario | None = None, app_tier: str = "flask"):
        import ipywidgets as w

        if measured is None:
            from seckill.measure import results

            measured = results.measured()
        self.measured = measured
        sc = scenario or Scenario()
        mine = capacity.measured_tiers(measured) or bool(measured.get("ceilings"))
        style = {"description_width": "190px"}
        layout = w.Layout(width="560px")

        def slider(value, lo, hi, step, label):
            return w.IntSlider(value=int(value), min=lo, max=hi, step=step, description=label, style=style,
                               layout=layout, continuous_update=False)

        self.client_qps = slider(sc.client_qps, 1_000, 200_000, 1_000, "client QPS · 客户端请求")
        self.peak_qps = slider(sc.peak_qps, 100, 100_000, 100, "peak QPS · 峰值 (past limits)")
        self.items = slider(sc.items, 1_000, 1_000_000, 1_000, "items · 商品数")
        self.sell_out_s = slider(sc.sell_out_s, 1, 600, 1, "sell-out time s · 售罄时间")
        self.drain_target_s = slider(sc.drain_target_s, 10, 3_600, 10, "orders in DB within s · 落库时限")
        buttons = dict(style, button_width="210px")
        self.design = w.ToggleButtons(options=[("Redis + queue · 预减 + 异步", "redis+queue"),
                                               ("db-direct · 直连数据库", "db-direct")],
                                      value=sc.design, description="design · 方案", style=buttons)
        self.numbers = w.ToggleButtons(options=[("mine · 我的测量", "mine"), ("seed · 原文", "seed")],
                                       value="mine" if mine else "seed", description="numbers · 数据",
                                       style=dict(style, button_width="150px"))
        self.app_tier = w.Dropdown(options=list(capacity.SEED_TIER_RPS), value=app_tier,
                                   description="app tier · 应用层", style=style)
        cap = self._capacities()
        self.cap_inputs = {k: w.BoundedFloatText(value=cap.of(k), min=1, max=1e9, step=100,
                                                 description=f"{capacity.LAYER_LABELS[k][0]} /s per instance",
                                                 style=style, layout=w.Layout(width="360px"))
                           for k in capacity.LAYERS}
        self.reset = w.Button(description="reset capacities · 重置", tooltip="back to the numbers chosen above",
                              layout=w.Layout(width="auto"))
        self.reset.on_click(lambda _button: self._reload_capacities())
        self._typed: set[str] = set()
        self._sources = dict(cap.sources)
        self.sources = w.HTML()
        self.output = w.Output()
        self._quiet = False
        for control in (self.client_qps, self.peak_qps, self.items, self.sell_out_s, self.drain_target_s,
                        self.design):
            control.observe(lambda _change: self.update(), names="value")
        for control in (self.numbers, self.app_tier):
            control.observe(lambda _change: self._reload_capacities(), names="value")
        for key, control in self.cap_inputs.items():
            control.observe(lambda _change, key=key: self._typed_capacity(key), names="value")
        # The chart and verdict first: a learner dragging a slider just below sees the chart move.
        self.widget = w.VBox([
            self.output,
            w.HTML("<b>Step 1 · 需求澄清</b> — the traffic and the sale"),
            self.client_qps, self.peak_qps, self.items, self.sell_out_s, self.design, self.drain_target_s,
            w.HTML("<b>Step 2 · 能力评估</b> — what one instance of each layer takes"),
            w.HBox([self.numbers, self.app_tier, self.reset]),
            *self.cap_inputs.values(), self.sources,
        ])
        self.widget.add_class("seckill-calculator")  # what HIDE_COPY_CSS looks for
        self.plan: Plan | None = None
        self.error: str | None = None
        # The static copy's display_id; None until the calculator is displayed (update() then keeps it current).
        self.static_id: str | None = None
        self.update()

    # -- state -------------------------------------------------------------------
    def _capacities(self) -> Capacities:
        if self.numbers.value == "mine":
            return capacity.from_results(self.measured, app_tier=self.app_tier.value)
        return capacity.from_results({}, app_tier=self.app_tier.value)

    def _reload_capacities(self) -> None:
        cap = self._capacities()
        self._quiet = True
        try:
            for key, control in self.cap_inputs.items():
                control.value = cap.of(key)
        finally:
            self._quiet = False
        self._typed.clear()
        self._sources = dict(cap.sources)
        self.update()

    def _typed_capacity(self, key: str) -> None:
        if self._quiet:
            return
        self._typed.add(key)
        self.update()

    def scenario(self) -> Scenario:
        return Scenario(client_qps=self.client_qps.value, peak_qps=self.peak_qps.value, items=self.items.value,
                        sell_out_s=self.sell_out_s.value, design=self.design.value,
                        drain_target_s=self.drain_target_s.value)

    def capacities(self) -> Capacities:
        sources = {k: ("typed by you · 手动输入" if k in self._typed else v) for k, v in self._sources.items()}
        return Capacities(nginx_rps=self.cap_inputs["nginx"].value, app_rps=self.cap_inputs["app"].value,
                          redis_ops_per_s=self.cap_inputs["redis"].value,
                          db_writes_per_s=self.cap_inputs["db"].value, app_tier=self.app_tier.value,
                          sources=sources)

    # -- drawing -------------------------------------------------------------------
    def update(self) -> Plan | None:
        """Recompute and redraw; a bad input shows its message instead of a chart."""
        from IPython.display import HTML, clear_output, display, update_display

        cap = self.capacities()
        self.sources.value = sources_html(cap)
        try:
            self.plan, self.error = capacity.plan(self.scenario(), cap), None
        except CapacityError as exc:
            self.plan, self.error = None, str(exc)
        from IPython import get_ipython

        if get_ipython() is None:  # plain Python (tests, scripts): the plan is the result, nothing to draw
            return self.plan
        with self.output:
            clear_output(wait=True)
            if self.plan is None:
                display(HTML(f'<p style="color:#cf222e"><b>{html.escape(self.error)}</b></p>'))
            else:
                display(figure(self.plan))
                display(HTML(verdict_html(self.plan)))
        if self.static_id is not None:  # outside the Output widget: this message goes to the cell's output
            update_display(self.static_bundle(), raw=True, display_id=self.static_id)
        return self.plan

    def set(self, **values) -> Plan | None:
        """Set controls by name (client_qps=..., design=..., nginx=... for a capacity) and redraw."""
        for name, value in values.items():
            control = self.cap_inputs.get(name) or getattr(self, name)
            control.value = value
        return self.plan

    def static_bundle(self) -> dict:
        """The static copy of the current state: {"text/html": verdict and bars, "text/plain": the verdict}."""
        return {"text/html": HIDE_COPY_CSS + static_html(self.plan, self.error),
                "text/plain": self.plan.verdict("en") if self.plan else (self.error or "no plan")}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget alone, with a one-line text for viewers without widgets (no verdict: it would go stale)."""
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = "Capacity calculator (live: run the cell) · 容量计算器 — its last verdict follows."
        return bundle

    def _ipython_display_(self) -> None:
        """Display the live widget, then the static copy under a display_id that update() keeps current.

        Two outputs rather than one: updating the widget's own output would make the
        front-end build a new view of it (the sliders redrawn under the learner's
        mouse). The copy is plain HTML: JupyterLab hides it next to the live widget,
        GitHub and nbconvert show it (as saved: the verdict of the last redraw).
        """
        from IPython.display import display

        if self.static_id is None:
            self.static_id = f"seckill-calculator-{uuid.uuid4().hex}"
        display(self._repr_mimebundle_(), raw=True)
        display(self.static_bundle(), raw=True, display_id=self.static_id)


def static_html(plan: Plan | None, error: str | None = None) -> str:
    """The verdict and a bar chart in plain HTML (no script): readable where widgets and plotly cannot run."""
    e = html.escape
    if plan is None:
        return f"<div class='seckill-static'><p style='color:#cf222e'><b>{e(error or 'no plan')}</b></p></div>"
    top = max(max(layer.demand or 0, layer.capacity) for layer in plan.layers) or 1
    rows = []
    for layer in plan.layers:
        colour = BOTTLENECK_COLOUR if layer.bottleneck else DEMAND_COLOUR
        demand_w = 100 * (layer.demand or 0) / top
        cap_w = 100 * layer.capacity / top
        rows.append(
            f"<tr><td style='text-align:left'>{e(layer.label)} · {e(layer.label_zh)}</td>"
            f"<td style='text-align:left;width:50%'>"
            f"<div style='background:{colour};width:{demand_w:.1f}%;height:10px'></div>"
            f"<div style='background:{CAPACITY_COLOUR};width:{cap_w:.1f}%;height:10px'></div></td>"
            f"<td>{layer.demand or 0:,.0f}</td><td>{layer.capacity:,.0f}</td><td>{layer.instances}</td></tr>")
    return (f"<div class='seckill-static'><p><i>Capacity calculator as last drawn — a static copy (run the cell "
            f"for the live one) · 容量计算器最后一次结果的静态副本</i></p>"
            "<table><thead><tr><th style='text-align:left'>layer · 层</th><th>demand (colour) vs one instance "
            "(grey), linear</th><th>demand /s</th><th>one instance /s</th><th>instances</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{verdict_html(plan)}</div>")


def show(measured: dict | None = None, scenario: Scenario | None = None, app_tier: str = "flask") -> Calculator:
    """Build the calculator with the default state drawn, display it, and return it."""
    from IPython.display import display

    calc = Calculator(measured, scenario, app_tier)
    display(calc)
    return calc


__all__ = ["Calculator", "figure", "show", "static_html", "verdict_html", "sources_html"]
