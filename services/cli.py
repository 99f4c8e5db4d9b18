"""The `seckill` command: the stack, sales, tiers and the order service from a shell.

Every user mistake ends in one line saying what to do and a non-zero exit code
(2 for a wrong command line, 1 for a state we cannot reach); never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from seckill import stack
from seckill.errors import SeckillError


class UserError(click.ClickException):
    """Printed as one line `seckill: <message>`, exit code 1."""

    def show(self, file=None) -> None:
        from seckill.i18n import tr_message

        click.echo(f"seckill: {tr_message(self.format_message())}", err=True)


def friendly(func):
    """Turn the errors a user can cause or fix into one clear line."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SeckillError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            raise UserError("interrupted") from None  # shown through tr_message, as every UserError
    return wrapper


def emit(data, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)


def _set_lang(_ctx, _param, value):
    if value:
        from seckill.i18n import set_lang
        set_lang(value)
    return value


# --lang zh (or a Chinese locale: LANG=zh_CN.UTF-8) makes grade, doctor and checklist speak Chinese.
lang_option = click.option("--lang", type=click.Choice(["en", "zh"]), default=None, expose_value=False,
                           is_eager=True, callback=_set_lang,
                           help="en or zh (中文); default: $SECKILL_LANG, then the locale ($LANG).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@lang_option
def main() -> None:
    """seckill: a flash-sale system on real Redis, RabbitMQ and PostgreSQL."""


# -- the stack -----------------------------------------------------------------------

@main.command()
@friendly
def up() -> None:
    """Start Redis, PostgreSQL and RabbitMQ (reuses what runs) and print their URLs."""
    urls = stack.up(out=sys.stderr)  # progress on stderr: stdout stays the URLs
    for name, url in urls.items():
        click.echo(f"{name}={url}")


@main.command()
@friendly
def down() -> None:
    """Stop everything this checkout started (services and tiers), and nothing else."""
    stack.down(out=sys.stderr)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def status(as_json: bool) -> None:
    """Show each service's URL, pid, port and health."""
    data = stack.status()
    lines = [f"{name:<9} {info['health']:<9} pid={info['pid'] or '-':<8} port={info['port']:<6} {info['url']}"
             + (f"  container={info['container']}" if info.get("container") else "")
             for name, info in data.items()]
    first = next(iter(data.values()), {})
    lines.append(f"backend: {first.get('backend')} ({first.get('backend_why')})")
    emit(data, as_json, "\n".join(lines))


@main.command()
@click.argument("service")
@click.option("-n", "--lines", default=60, show_default=True, type=click.IntRange(1, 100_000))
@friendly
def logs(service: str, lines: int) -> None:
    """Print the last lines of a service's log (redis, postgres, rabbitmq, gateway, ...)."""
    click.echo(stack.logs(service, lines))


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def reset(yes: bool) -> None:
    """Stop everything and wipe all data under .run/."""
    if not yes and sys.stdin.isatty():
        click.confirm("Wipe all Redis, RabbitMQ and PostgreSQL data of this checkout?", abort=True)
    stack.reset(out=sys.stderr)


@main.command("install-servers")
@click.option("--with-tools", is_flag=True, help="Also the test tools (docker-compose, wrk, redis-benchmark).")
@friendly
def install_servers(with_tools: bool) -> None:
    """Install missing server binaries with apt (as root), or say what to install."""
    from seckill.stack import installer

    backend, why = stack.choose()
    if backend == "docker" and not with_tools:  # nothing to install: the servers are images
        click.echo(f"servers: containers of docker-compose.yml ({why})")
        return
    tools = list(installer.TOOLS) if with_tools else []
    installer.ensure_servers(tools=tools)
    click.echo("servers: " + ", ".join(f"{n}={installer.find(n)}" for n in installer.SERVERS))


# -- sales ----------------------------------------------------------------------------

@main.group()
def sale() -> None:
    """Create flash sales."""


@sale.command("create")
@click.option("--product", "product_id", required=True, type=click.IntRange(1, 2**62 - 1),
              help="Product id (a positive whole number).")
@click.option("--stock", required=True, type=click.IntRange(0, 10**9), help="Items on sale.")
@click.option("--starts-at", default=None,
              help="ISO-8601 start with its zone, e.g. 2026-11-25T20:00:00+08:00 or ...Z for UTC "
                   "(default: now). A time without a zone is refused.")
@click.option("--ends-at", default=None, help="ISO-8601 end with its zone (default: open-ended).")
@click.option("--name", default="", help="A product name for charts.")
@click.option("--force", is_flag=True, help="Drop orders still waiting in the queue.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def sale_create(product_id, stock, starts_at, ends_at, name, force, as_json) -> None:
    """Write the product to PostgreSQL and load its stock into Redis."""
    from seckill.config import settings
    from seckill.system.sale import create_sale, parse_time

    window = parse_time(starts_at, "--starts-at"), parse_time(ends_at, "--ends-at")  # refused before any start
    stack.up(out=None)
    created = create_sale(settings(), product_id, stock, starts_at=window[0], ends_at=window[1], name=name,
                          force=force)
    emit(created, as_json, f"sale created: product {product_id}, stock {stock}")


@main.command()
@click.option("--product", "product_id", default=None, type=click.IntRange(1, 2**62 - 1),
              help="Only this product (default: every product in PostgreSQL).")
@click.option("--fix", is_flag=True, help="Repair what differs (safe while a sale runs).")
@click.option("--settle", "settle_s", default=5.0, show_default=True, type=click.FloatRange(0, 120),
              help="Seconds between the two looks before a leak is returned (an order in flight is not a leak).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def reconcile(product_id, fix, settle_s, as_json) -> None:
    """Compare Redis with PostgreSQL and the queue (对账); exit 1 if discrepancies remain."""
    from seckill.system import reconcile as rec
    from seckill.config import settings

    report = rec.reconcile(settings(), product_id, fix=fix, settle_s=settle_s,
                           out=None if as_json else sys.stderr)
    emit(report.as_dict(), as_json, str(report))
    sys.exit(0 if report.consistent else 1)


# -- tiers and the order service ----------------------------------------------------------

@main.group()
def tier() -> None:
    """Start or stop a tier of the system (gateway processes + order service)."""


@tier.command("up")
@click.argument("name")
@click.option("--impl", "impl_name", default=None, help="solutions (default), labs, or a folder.")
@click.option("--bucket-rate", type=click.FloatRange(min=0.001), default=None, help="Global tokens per second.")
@click.option("--bucket-capacity", type=click.FloatRange(min=1), default=None, help="Global burst size.")
@click.option("--user-limit", type=click.IntRange(min=1), default=None, help="Requests per user per window.")
@click.option("--ip-limit", type=click.IntRange(min=1), default=None, help="Requests per IP per window.")
@click.option("--window", "window_s", type=click.FloatRange(min=0.1), default=None, help="Limit window, seconds.")
@click.option("--nginx-rate", type=click.FloatRange(min=1), default=None, help="nginx limit_req, requests/s.")
@click.option("--nginx-burst", type=click.IntRange(min=0), default=None, help="nginx limit_req burst.")
@click.option("--local-slice", type=click.IntRange(min=1), default=None,
              help="local-stock: units an instance leases from Redis at a time.")
@click.option("--load-test", is_flag=True,
              help="Believe X-Forwarded-For from every loopback peer, for wrk / locust that simulate many "
                   "clients from one address (off by default; never with real clients).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def tier_up(name, impl_name, bucket_rate, bucket_capacity, user_limit, ip_limit, window_s, nginx_rate,
            nginx_burst, local_slice, load_test, as_json) -> None:
    """Start tier NAME (db-direct, flask, flask-x4, fastapi, local-stock) on the running stack; prints its base URL."""
    from seckill.system import tiers

    limits = {k: v for k, v in dict(bucket_rate=bucket_rate, bucket_capacity=bucket_capacity,
                                    user_limit=user_limit, ip_limit=ip_limit, window_s=window_s,
                                    nginx_rate=nginx_rate, nginx_burst=nginx_burst,
                                    local_slice=local_slice).items()
              if v is not None}
    state = tiers.up(name, limits=limits, impl_name=impl_name, out=sys.stderr, load_test=load_test)
    emit(state, as_json, state["base_url"])


@tier.command("down")
@friendly
def tier_down() -> None:
    """Stop the running tier (the stack keeps running)."""
    from seckill.system import tiers

    tiers.down(out=sys.stderr)


@tier.command("status")
@click.option("--json", "as_json", is_flag=True)
@friendly
def tier_status(as_json) -> None:
    """Which tier runs, and where."""
    from seckill.system import tiers

    state = tiers.current()
    emit(state, as_json, f"{state['tier']}: {state['base_url']}" if state else "no tier is running")


@main.command()
@friendly
def consumer() -> None:
    """Run the order service in the foreground (Ctrl-C stops it)."""
    from seckill.system import order_service

    order_service.main()


# -- JupyterLab -------------------------------------------------------------------------

@main.command()
@click.option("--headless", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option("--port", default=18888, show_default=True, type=click.IntRange(1024, 65535),
              envvar="SECKILL_LAB_PORT", show_envvar=True, help="JupyterLab's port (make lab PORT=...).")
@lang_option
@friendly
def lab(headless: bool, port: int) -> None:
    """Start the stack, then JupyterLab on notebooks/ (keeps serving until Ctrl-C).

    Progress on stdout, Jupyter's own log in .run/logs/jupyterlab.log, and the
    URL with its token as the last line.
    """
    from seckill.course import jupyterlab

    jupyterlab.install_sigterm()
    try:
        stack.up(out=sys.stdout)
        code = jupyterlab.serve(port, headless=headless)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


# -- graded labs -------------------------------------------------------------------------

class UnknownLabError(UserError):
    """A lab name that does not exist: one line listing the real ones, exit code 2."""

    exit_code = 2


@main.command()
@click.argument("lab")
@click.option("--impl", "impl_name", default=None,
              help="labs (default, or $SECKILL_IMPL), solutions, or a folder holding the module.")
@lang_option
@friendly
def grade(lab: str, impl_name: str | None) -> None:
    """Grade lab LAB (token_bucket, rate_limit, stock, producer, consumer); exit 0 only if all checks pass."""
    from seckill.course import grader

    if lab not in grader.LABS:
        raise UnknownLabError(f"unknown lab {lab!r}; the labs are: {', '.join(grader.LABS)}")
    report = grader.grade(lab, impl_name)
    grader.save_progress(report)
    click.echo(str(report))
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def progress(as_json: bool) -> None:
    """Which labs you have passed, and when."""
    from seckill.course import grader

    data = grader.progress()
    lines = []
    for lab, (_module, notebook, title) in grader.LABS.items():
        entry = data.get(lab)
        if entry is None:
            lines.append(f"{lab:<13} not graded yet   {notebook}")
            continue
        state = "passed" if entry.get("passed") else "not passed"
        if entry.get("impl") == "solutions":  # grading the reference says nothing about your labs/
            state = "reference " + state
        line = f"{lab:<13} {state:<18} {entry.get('score', '?'):>5}  {entry.get('date', '')}  ({entry.get('impl')})"
        last = entry.get("last") or {}
        if last and last.get("date") != entry.get("date"):
            line += f"  last attempt: {last.get('score')} on {last.get('date')}"
        lines.append(line)
    emit(data, as_json, "\n".join(lines))


# -- load tests ----------------------------------------------------------------------------

@main.command()
@click.argument("target", metavar="TIER")
@click.option("--users", required=True, type=click.IntRange(1, 1_000_000), help="Simulated users (distinct buyers).")
@click.option("--spawn-rate", required=True, type=click.FloatRange(min=0.001), help="Users started per second.")
@click.option("--duration", required=True, type=click.FloatRange(1, 3600), help="Run time, seconds (hard limit).")
@click.option("--product", "product_id", default=1, show_default=True, type=click.IntRange(1, 2**62 - 1))
@click.option("--stock", type=click.IntRange(0, 10**9), default=None,
              help="Create the sale afresh with this stock first (default: use the existing sale).")
@click.option("--requests-per-user", default=4, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--processes", type=click.IntRange(1, 64), default=None,
              help="Locust worker processes (default: cores, at most 2).")
@click.option("--label", default=None, help="A name for this run in charts.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def load(target, users, spawn_rate, duration, product_id, stock, requests_per_user, processes, label,
         as_json) -> None:
    """Load-test TIER (flask, ... or http://127.0.0.1:PORT) with locust; exit 1 if a sale invariant broke."""
    from seckill.measure import loadtest

    result = loadtest.run(target, product_id=product_id, users=users, spawn_rate=spawn_rate,
                          duration_s=duration, requests_per_user=requests_per_user, processes=processes,
                          stock=stock, label=label, progress=not as_json and sys.stderr.isatty())
    s, inv = result.summary, result.invariants
    text = "\n".join([
        f"{s['tier']}: {s['requests']} requests from {s['users']} users in {s['elapsed_s']} s "
        f"({s['processes']} locust processes, {s['cpu_count']} cores)",
        f"  {s['requests_per_s']} requests/s · p50 {s['p50_ms']} ms · p95 {s['p95_ms']} ms · p99 {s['p99_ms']} ms",
        "  " + " · ".join(f"{k} {s[k]}" for k in loadtest.OUTCOMES),
        f"invariants: oversold {inv['oversold']} · lost {inv['lost']} · duplicate users {inv['duplicate_users']} "
        f"· orders {inv['orders']} = successes {inv['successes']} · drained {inv['drained']} "
        f"→ {'ok' if inv['ok'] else 'BROKEN'}",
        f"saved {result.path}",
    ])
    emit({"summary": s, "invariants": inv, "path": str(result.path)}, as_json, text)
    if inv["oversold"] > 0 or inv["lost"] > 0:
        sys.exit(1)


# -- failure labs ---------------------------------------------------------------------------

@main.command("chaos")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--tier", "tier_name", default=None,
              help="The tier to break (default: flask; the queue scenarios take the running tier if any).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def chaos_command(scenario: str, tier_name: str | None, as_json: bool) -> None:
    """Break the running system on purpose (race, redis-down, redis-failover, mq-down,
    crash-between, consumer-crash, backlog, broker-stall, poison, pg-down); exit 1 if an invariant broke."""
    import inspect

    from seckill import chaos

    if scenario not in chaos.SCENARIOS:
        raise UnknownLabError(f"no scenario called {scenario!r}; choose one of: {', '.join(chaos.SCENARIOS)}")
    options = {}
    if tier_name is not None:
        if "tier" not in inspect.signature(chaos.scenario_module(scenario).run).parameters:
            raise UserError(f"{scenario} does not take --tier; run it without")
        options["tier"] = tier_name
    report = chaos.run(scenario, **options)
    emit(report.as_dict(), as_json, str(report))
    sys.exit(0 if report.ok else 1)


# -- the seed's self-check list ---------------------------------------------------------------

@main.command("checklist")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="English or 中文; default: $SECKILL_LANG, then the locale ($LANG).")
@friendly
def checklist_command(as_json: bool, lang: str | None) -> None:
    """The seed's self-check list: each item with the evidence you produced, or what to run (always exit 0)."""
    from seckill.course import checklist
    from seckill.i18n import lang as current_lang

    lang = lang or current_lang()

    report = checklist.evaluate(lang)
    emit(report.as_dict(), as_json, checklist.render(report))


# -- is this machine ready? ---------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@lang_option
@friendly
def doctor(as_json: bool) -> None:
    """Check Python, packages, server binaries, ports, memory and disk; each problem with its fix (exit 1 if any)."""
    from seckill.stack import envcheck

    report = envcheck.run()
    emit(report.as_dict(), as_json, str(report))
    sys.exit(0 if report.ok else 1)


# -- the benchmark (make bench) ---------------------------------------------------------------

@main.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the record instead of the table.")
@click.option("--quick", is_flag=True, help="A short smoke run (2 s per tier, small drain and confirm runs).")
@click.option("--tier", "tier_names", multiple=True, metavar="NAME",
              help="Only this tier (repeatable); with --speedups, the tier measured (default: the top one).")
@click.option("--scenario", type=click.Choice(["seed"]), default=None,
              help="seed: the top tier sells 100,000 items to 100,000+ users, open loop (the source plan's goal).")
@click.option("--rate", type=click.FloatRange(1, 100_000), default=None,
              help="With --scenario seed: arrival rate in requests/s (default: what this machine sustains).")
@click.option("--items", type=click.IntRange(1, 1_000_000), default=100_000, show_default=True,
              help="With --scenario seed: the stock on sale.")
@click.option("--profile", is_flag=True,
              help="With --scenario seed: flame graphs of the gateway and the order service (py-spy), in results/.")
@click.option("--speedups", "speedups_run", is_flag=True,
              help="Each speed-up of the top tier off and on, twice, in one run (items/s, CPU per item).")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="With --speedups: only this speed-up (repeatable), e.g. one-script.")
@click.option("--scale", "scale_run", is_flag=True,
              help="How the drain and reconcile's queue read grow: 2,000, 20,000 and 200,000 queued orders.")
@friendly
def bench_command(as_json: bool, quick: bool, tier_names: tuple[str, ...], scenario: str | None,
                  rate: float | None, items: int, profile: bool, speedups_run: bool, only: tuple[str, ...],
                  scale_run: bool) -> None:
    """Every tier under the same wrk load, with this machine's ceilings; exit 1 if a tier oversold or lost."""
    from seckill.measure import bench

    if only and not speedups_run:
        raise UserError("--only chooses among the speed-ups; add --speedups")
    if speedups_run:
        unknown = ", ".join(name for name in only if name not in bench.SPEEDUPS)
        if unknown:
            known = ", ".join(bench.SPEEDUPS)
            raise UserError(f"no speed-up named {unknown}; choose from {known}")
        if only:  # this process measures only those (bench.speedups reads the table when it runs)
            bench.SPEEDUPS = {name: bench.SPEEDUPS[name] for name in dict.fromkeys(only)}
        if len(tier_names) > 1:
            raise UserError("--speedups measures one tier at a time; give --tier once")
        record = bench.speedups(rounds=1 if quick else 2, duration_s=2.0 if quick else 4.0, progress=True,
                                tier=tier_names[0] if tier_names else bench.SEED_TIER)
        emit(record, as_json, bench.speedups_table(record))
        return

    if scale_run:
        from seckill.measure import scale

        record = scale.run(quick=quick, progress=True)
        emit(record, as_json, scale.table(record))
        return
    if scenario == "seed":
        record = bench.seed_scenario(rate, items, progress=True, profile=profile)
        emit(record, as_json, bench.seed_table(record))
        sys.exit(0 if record["ok"] else 1)
    record = bench.run(list(tier_names) or None, quick=quick, progress=True)
    emit(record, as_json, bench.table(record))
    if bench.failed_tiers(record):
        sys.exit(1)


@main.command("watch-queue")
@click.option("--threshold", required=True, type=click.IntRange(min=1),
              help="Alert when more orders than this wait in the queue.")
@click.option("--interval", "interval_s", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between samples.")
@click.option("--duration", "duration_s", default=600.0, show_default=True, type=click.FloatRange(1, 86_400),
              help="Stop after this many seconds (Ctrl-C stops earlier).")
@friendly
def watch_queue(threshold: int, interval_s: float, duration_s: float) -> None:
    """Print the order queue's depth every INTERVAL and an ALERT line when it passes THRESHOLD."""
    from seckill.measure import alerts
    from seckill.config import settings

    s = settings()
    click.echo(f"watching queue {s.queue!r} every {interval_s:g} s for {duration_s:g} s; "
               f"alert above {threshold} orders (Ctrl-C to stop)", err=True)
    try:
        watcher = alerts.watch(s.amqp_url, s.queue, threshold, interval_s=interval_s, duration_s=duration_s,
                               out=sys.stdout)
    except KeyboardInterrupt:
        return
    fired = watcher.fired()
    click.echo(f"{len(watcher.samples)} samples, {len(fired)} alerts", err=True)


# `seckill workshop …` lives in its own module, given friendly and emit above.
from seckill.course.workshop_cli import build as _workshop  # noqa: E402

main.add_command(_workshop(friendly, emit, UserError))


if __name__ == "__main__":  # pragma: no cover
    main()

