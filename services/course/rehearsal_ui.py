"""The widgets of the interview rehearsal notebook: thin views over :mod:`seckill.course.rehearsal`.

    from seckill.course.rehearsal_ui import Rehearsal
    r = Rehearsal()          # reads your results/ and lab grades once
    r.switch                 # EN / 中文: every view below re-renders in the chosen language
    r.part("opening")        # prompt, a 30 s clock, a box for your notes, the script (folded)
    r.card("kafka")          # write first, reveal, rate yourself 1-5
    r.saver()                # save the attempt: results/rehearsal-<ts>.json

The clocks are ipywidgets ``Play`` widgets: they tick in the browser (no kernel
thread, no sleeping cell), start when the learner presses play, and stop at zero.
Under nbclient nothing ticks, so the notebook runs top to bottom at once.
"""

from __future__ import annotations

import ipywidgets as widgets
from IPython.display import Markdown, display

from seckill import i18n
from seckill.course import rehearsal
from seckill.measure import results
from seckill.course.rehearsal import Attempt, RehearsalError
from seckill.course.rehearsal_content import PART_SECONDS


# a view never wider than the notebook column (no horizontal scroll bar under it)
BOX = {"width": "98%", "overflow": "hidden"}


def _markdown(out: widgets.Output, text: str) -> None:
    out.clear_output()
    with out:
        display(Markdown(text))


# The capacity table's columns in Chinese (rehearsal.capacity keeps English keys for code that reads them).
CAPACITY_ZH = {"tier": "档位", "seed_qps": "原文 QPS", "copies_needed_seed": "按原文需要的份数",
               "your_rps": "你的实测（请求/秒）", "copies_needed_yours": "按你的实测需要的份数", "source": "来源"}


class Rehearsal:
    """One rehearsal session: the language switch, the views, and the attempt they fill in."""

    def __init__(self, lang: str | None = None, measured: dict | None = None, progress: dict | None = None):
        lang = lang or i18n.lang()  # the Chinese notebook (SECKILL_LANG=zh) or a Chinese locale opens in 中文
        rehearsal.text(lang)  # a clear error for a language we do not have
        self.measured = measured if measured is not None else results.measured()
        if progress is None:
            from seckill.course.grader import progress as read_progress

            progress = read_progress()
        self.progress = progress
        self.attempt = Attempt(lang=lang)
        self.switch = widgets.ToggleButtons(options=[("English", "en"), ("中文", "zh")], value=lang,
                                            description="", style={"button_width": "90px"})
        self._renderers: list = []
        self.switch.observe(self._language_changed, "value")

    @property
    def lang(self) -> str:
        return self.switch.value

    @property
    def words(self) -> dict:
        return rehearsal.text(self.lang)

    def _language_changed(self, _change) -> None:
        self.attempt.lang = self.lang
        for render in self._renderers:
            render()

    def _view(self, render) -> None:
        """Render now, and again whenever the language changes."""
        render()
        self._renderers.append(render)

    # -- the frame -----------------------------------------------------------------------

    def framework(self) -> widgets.Output:
        """The seed's five steps and its three decisions, as two tables."""
        out = widgets.Output()

        def render():
            zh = self.lang == "zh"
            head = "| 步骤 | 核心问题 | 输出 |" if zh else "| step | the question | what you produce |"
            rows = [f"| **{a}** | {b} | {c} |" for a, b, c in self.words["framework"]]
            head2 = ("| 决策点 | 问题 | 方案 | 原因 |" if zh else "| decision | problem | solution | why |")
            rows2 = [f"| **{a}** | {b} | {c} | {d} |" for a, b, c, d in self.words["decisions"]]
            _markdown(out, "\n".join([head, "|---|---|---|", *rows, "", head2, "|---|---|---|---|", *rows2]))

        self._view(render)
        return out

    # -- the four timed parts -----------------------------------------------------------------

    def clock(self, seconds: int) -> widgets.HBox:
        """A countdown that runs in the browser: Play drives the bar (jslink), a label says what is left."""
        play = widgets.Play(value=0, min=0, max=seconds, step=1, interval=1000, show_repeat=False)
        bar = widgets.IntProgress(value=0, min=0, max=seconds, layout={"width": "280px"})
        widgets.jslink((play, "value"), (bar, "value"))
        label = widgets.Label()

        def render(_change=None):
            left = seconds - play.value
            label.value = self.words["ui"]["up"] if left <= 0 else self.words["ui"]["left"].format(s=left)
            bar.bar_style = "danger" if left <= 0 else ("warning" if left <= seconds // 6 else "")

        play.observe(render, "value")
        self._view(render)
        return widgets.HBox([play, bar, label])

    def part(self, part_id: str) -> widgets.VBox:
        """One part of the 3-minute script: what to cover, the clock, your notes, the script folded away."""
        if part_id not in PART_SECONDS:
            raise RehearsalError(f"no part called {part_id!r}; the parts are: {', '.join(PART_SECONDS)}")
        seconds = PART_SECONDS[part_id]
        head = widgets.Output()
        notes = widgets.Textarea(value=self.attempt.notes.get(part_id, ""), layout={"width": "100%", "height": "90px"})
        notes.observe(lambda change: self.attempt.note(part_id, change["new"]), "value")
        script = widgets.Output()
        fold = widgets.Accordion(children=[script], selected_index=None)

        def render():
            filled = rehearsal.fill_script(self.measured, self.lang, self.progress)
            p = next(x for x in filled.parts if x.id == part_id)
            zh = self.lang == "zh"
            unit, colon = (" 秒", "：") if zh else (" s", ":")
            _markdown(head, f"#### {p.title} · {p.seconds}{unit}\n\n**{self.words['ui']['prompt']}{colon}** {p.prompt}")
            notes.placeholder = self.words["ui"]["notes"]
            fold.set_title(0, self.words["ui"]["script"])
            _markdown(script, p.script)

        self._view(render)
        return widgets.VBox([head, self.clock(seconds), notes, fold], layout=BOX)

    def script(self) -> widgets.Output:
        """The whole script with your figures, and the files they came from."""
        out = widgets.Output()
        self._view(lambda: _markdown(out, rehearsal.fill_script(self.measured, self.lang, self.progress).markdown()))
        return out

    # -- the follow-up drill ---------------------------------------------------------------

    def card(self, card_id: str) -> widgets.VBox:
        """A question; your answer; the model answer only after you wrote yours; then rate yourself 1-5."""
        rehearsal.card(card_id, self.lang, self.measured, self.progress)  # a clear error for an unknown card
        question, model, message = widgets.Output(), widgets.Output(), widgets.Label()
        answer = widgets.Textarea(layout={"width": "100%", "height": "110px"})
        reveal = widgets.Button(icon="eye", disabled=True, layout={"width": "auto"})
        rating = widgets.ToggleButtons(options=[1, 2, 3, 4, 5], value=None, style={"button_width": "40px"})
        rate_help = widgets.Label()
        rating_box = widgets.HBox([rating, rate_help], layout={"display": "none"})

        def answered(change):
            self.attempt.answer(card_id, change["new"])
            reveal.disabled = not change["new"].strip()

        def show_model():
            c = rehearsal.card(card_id, self.lang, self.measured, self.progress)
            t = self.words["ui"]
            _markdown(model, f"**{t['model']}** — {c.model}\n\n**{t['with_yours']}:**\n\n{c.yours}")

        def on_reveal(_button):
            try:
                self.attempt.reveal(card_id)
            except RehearsalError as exc:
                message.value = str(exc)
                return
            message.value = ""
            show_model()
            rating_box.layout.display = "flex"

        def on_rate(change):
            if change["new"] is not None:
                self.attempt.rate(card_id, change["new"])

        answer.observe(answered, "value")
        reveal.on_click(on_reveal)
        rating.observe(on_rate, "value")

        def render():
            c = rehearsal.card(card_id, self.lang, self.measured, self.progress)
            t = self.words["ui"]
            _markdown(question, f"#### {c.question}\n\n*{c.hint}*")
            answer.placeholder = t["answer"]
            reveal.description = t["reveal"]
            rating.description = t["rate"]
            rate_help.value = t["rate_help"]
            if (self.attempt.answers.get(card_id) or rehearsal.Answer()).revealed:
                show_model()

        self._view(render)
        return widgets.VBox([question, answer, widgets.HBox([reveal, message]), model, rating_box], layout=BOX)

    # -- saving and looking back -----------------------------------------------------------------

    def saver(self) -> widgets.VBox:
        """A button that saves this attempt as a new results/rehearsal-<ts>.json."""
        button, message = widgets.Button(icon="save", layout={"width": "auto"}), widgets.Label()

        def on_save(_button):
            try:
                path = rehearsal.save_attempt(self.attempt)
            except RehearsalError as exc:
                message.value = str(exc)
                return
            message.value = self.words["ui"]["saved"].format(path=path)

        button.on_click(on_save)

        def render():
            button.description = self.words["ui"]["save"]

        self._view(render)
        return widgets.VBox([button, message])

    # -- capacity and charts, in the chosen language --------------------------------------------

    def capacity(self, peak_qps: int = rehearsal.SEED_PEAK_QPS) -> widgets.Output:
        """The capacity table (rehearsal.capacity) with headers in the chosen language."""
        import pandas as pd

        rows = rehearsal.capacity(self.measured, peak_qps=peak_qps)  # a clear error for a bad peak, now
        out = widgets.Output()

        def render():
            frame = pd.DataFrame(rows)
            if self.lang == "zh":
                frame = frame.rename(columns=CAPACITY_ZH)
                frame.iloc[:, -1] = frame.iloc[:, -1].str.replace("not measured yet: run", "尚未测量：运行", regex=False)
            out.clear_output()
            with out:
                from IPython.display import display

                display(frame)

        self._view(render)
        return out

    def _figure(self, make) -> widgets.Output:
        out = widgets.Output()

        def render():
            fig = make(self.lang)
            out.clear_output()
            with out:
                if fig is None:
                    print(self.words["ui"].get("no_ratings", ""))
                else:
                    fig.show()

        self._view(render)
        return out

    def seed_vs_yours(self) -> widgets.Output:
        """The seed's QPS per tier beside yours, titled in the chosen language."""
        return self._figure(lambda lang: rehearsal.seed_vs_yours_figure(self.measured, lang))

    def ratings(self, saved: list[dict] | None = None) -> widgets.Output:
        """Your ratings over saved attempts, titled in the chosen language (a sentence while there are none)."""
        saved = rehearsal.attempts() if saved is None else saved
        return self._figure(lambda lang: rehearsal.ratings_figure(saved, lang))

    def checklist(self) -> widgets.Output:
        """The seed's self-check list with your evidence (what `seckill checklist` prints)."""
        from seckill.course import checklist

        out = widgets.Output()

        def render():
            report = checklist.evaluate(self.lang, measured=self.measured, progress=self.progress)
            out.clear_output()
            with out:
                print(checklist.render(report))

        self._view(render)
        return out
