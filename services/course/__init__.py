"""seckill.course — the course around the system.

grader.py runs the checks of graders/ (one module per lab) and prints hints;
coursemap.py is the map of notebooks; capacity.py is the capacity model behind
calculator.py (notebook 01) and diagram.py draws the architecture; checklist.py,
rehearsal.py, rehearsal_content.py and rehearsal_ui.py are the interview
rehearsal (notebook 90); workshop.py, workshop_cli.py and dashboard.py run a
workshop on one server; jupyterlab.py starts JupyterLab for `make lab`.

The top room: it may import chaos, measure, system, stack and the bottom
modules; only cli.py imports it.
"""
