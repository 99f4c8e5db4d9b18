"""`seckill workshop …`: the commands an instructor runs (see workshop.py, dashboard.py, room.py).

Built by :func:`build` with the CLI's error handling passed in, so this module does not import
cli.py (which imports it: `python -m seckill.cli` would otherwise import a half-made cli).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click


def build(friendly, emit, UserError) -> click.Group:
    """The `workshop` group, using the CLI's ``friendly`` (one-line errors), ``emit`` and ``UserError``."""

    @click.group()
    def workshop() -> None:
        """Run the course for a room: measure, plan, set up JupyterHub, watch the room."""


    @workshop.command("measure")
    @click.option("--tier", default="flask", show_default=True, help="The tier to measure (the notebooks' first).")
    @click.option("--idle-s", default=5.0, show_default=True, type=click.FloatRange(1, 60), help="Idle sampling, seconds.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @friendly
    def measure_command(tier: str, idle_s: float, as_json: bool) -> None:
        """Measure one learner's stack, tier, JupyterLab and kernel on this machine (about a minute); saved."""
        from seckill.course import workshop as ws

        m = ws.measure(tier, idle_s, out=sys.stderr)
        text = "\n".join([
            "idle      : " + ", ".join(f"{k} {v['pss_mb']} MB {v['cpu_cores']} cores" for k, v in sorted(m["idle"].items())),
            "under load: " + ", ".join(f"{k} {v['pss_mb']} MB {v['cpu_cores']} cores" for k, v in sorted(m["load"].items())),
            f"generator : {m['generator']['cpu_cores']} cores; busiest 2 s of the test {m['burst_cores']} cores; JupyterLab: {m['jupyterlab']}; kernel {m['kernel_pss_mb']} MB",
            f"load test : sell-through {m['load_result']['sell_through']}, invariants "
            f"{'ok' if m['load_result']['ok'] else 'BROKEN'}",
            f"saved     : {m['path']}",
            "next      : seckill workshop plan --learners 30"])
        emit(m, as_json, text)


    @workshop.command("plan")
    @click.option("--learners", required=True, type=click.IntRange(1, 10_000), help="How many learners share the host.")
    @click.option("--overlap", default=0.25, show_default=True, type=click.FloatRange(0.01, 1.0),
                  help="Share of the room load-testing at the same time.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @friendly
    def plan_command(learners: int, overlap: float, as_json: bool) -> None:
        """Machine size and settings for N learners, from `seckill workshop measure` on this machine."""
        from seckill.course import workshop as ws

        p = ws.plan(learners, ws.latest_measure(), overlap)
        emit(p, as_json, ws.plan_text(p))


    @workshop.command("init")
    @click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("/srv/seckill"),
                  show_default=True, help="Where the hub's files and the room log go.")
    @click.option("--learner", "learners", multiple=True, required=True, help="A learner's Unix user name (repeat).")
    @click.option("--admin", "admins", multiple=True, help="An instructor's Unix user name (repeat).")
    @click.option("--repo", required=True, help="The course's git URL (or path) every learner clones.")
    @click.option("--branch", default="main", show_default=True)
    @click.option("--hub-url", default="http://127.0.0.1:8000", show_default=True, help="Where the hub listens.")
    @click.option("--auth", "authenticator", type=click.Choice(["pam", "dummy"]), default="pam", show_default=True,
                  help="pam: Unix passwords; dummy: one shared password, for tests only.")
    @click.option("--dashboard-port", default=18890, show_default=True, type=click.IntRange(1024, 65535))
    @click.option("--hub-api-port", default=8081, show_default=True, type=click.IntRange(1024, 65535))
    @click.option("--proxy-api-port", default=8001, show_default=True, type=click.IntRange(1024, 65535))
    @click.option("--learners-planned", type=click.IntRange(1, 10_000), default=None,
                  help="Take the settings from `workshop plan` for this many learners (needs a measurement).")
    @friendly
    def init_command(directory, learners, admins, repo, branch, hub_url, authenticator, dashboard_port, hub_api_port,
                     proxy_api_port, learners_planned) -> None:
        """Write a JupyterHub config for local users, the room log dir and an nbgitpuller link."""
        from seckill.course import workshop as ws

        env = {}
        if learners_planned:
            env = dict(ws.plan(learners_planned, ws.latest_measure())["settings"])
            env.pop("SECKILL_ROOM_LOG", None)
        files = ws.init(directory, learners=list(learners), admins=list(admins) or [getpass.getuser()], repo=repo,
                        hub_url=hub_url, settings_env=env, authenticator=authenticator, branch=branch,
                        dashboard_port=dashboard_port, hub_api_port=hub_api_port, proxy_api_port=proxy_api_port)
        tools = ws.hub_tools()
        click.echo(f"config     : {files['config']}\nroom log   : {files['room']}\n"
                   f"dashboard  : {files['dashboard']}\nhand out   : {files['link']}")
        missing = [k for k, v in tools.items() if v is None]
        if missing:
            click.echo(f"still needed: {', '.join(missing)} (make hub: pip install -e .[hub] and "
                       f"npm install --prefix .venv configurable-http-proxy; then run init again)", err=True)
        click.echo(f"start      : jupyterhub -f {files['config']}   (as root, for local users)")


    @workshop.command("dashboard")
    @click.option("--room", "room_dir", type=click.Path(file_okay=False, path_type=Path), envvar="SECKILL_ROOM_LOG",
                  required=True, help="The room log directory (SECKILL_ROOM_LOG).")
    @click.option("--port", default=18890, show_default=True, type=click.IntRange(1024, 65535))
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--prefix", default="", help="The path a proxy serves it under (JupyterHub: /services/room).")
    @click.option("--once", is_flag=True, help="Print the room as JSON and exit.")
    @click.option("--hub-auth", is_flag=True,
                  help="Behind the hub's login (as a JupyterHub service: `workshop init` sets it).")
    @friendly
    def dashboard_command(room_dir: Path, port: int, host: str, prefix: str, once: bool, hub_auth: bool) -> None:
        """Serve the instructor's room dashboard: one row per learner and the tier-ladder leaderboard."""
        from seckill.course import dashboard

        if not room_dir.is_dir():
            raise UserError(f"no room log at {room_dir}; run `seckill workshop init` or give --room")
        if once:
            emit(dashboard.snapshot(room_dir), True, "")
            return
        if hub_auth:
            try:
                dashboard.serve_behind_hub(room_dir, host, port)
            except ImportError:
                raise UserError("--hub-auth needs jupyterhub: pip install -e .[hub] (or make hub)") from None
            except RuntimeError as exc:
                raise UserError(str(exc)) from None
            except OSError as exc:
                raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); give another --port") from None
            except KeyboardInterrupt:
                pass
            return
        try:
            server = dashboard.make_server(room_dir, host, port, prefix)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); give another --port") from None
        click.echo(f"room dashboard on http://{host}:{port}{prefix.rstrip('/')}/  (Ctrl-C stops it)", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    return workshop
