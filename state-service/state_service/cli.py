"""The `state-service` command line."""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from safe_singer_common.cli import debug_wanted, fail

from state_service import lease as leases
from state_service.errors import StateServiceError
from state_service.history import Retention, prune
from state_service.processes import DEFAULT_STOP_GRACE
from state_service.progress import printable
from state_service.report import read_bookmark, run_history, status
from state_service.runner import DEFAULT_TARGET_FINISH, Limits, run_command, run_singer
from state_service.store import DEFAULT_URL, URL_ENV, Store, Timeouts
from state_service.urls import UnusableUrl, check_usable
from state_service.web import READ_TIMEOUT, is_loopback, make_server

EXIT_REFUSED = 3
F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    """``--db`` on every subcommand too; the subcommand's value wins over the group's."""
    return click.option(
        "--db",
        "sub_db",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL (overrides the group's).",
    )(func)


def setting(
    name: str, default: float, help_text: str, kind: click.ParamType | None = None
) -> Callable[[F], F]:
    """An option with its STATE_SERVICE_* environment variable (--a-b: STATE_SERVICE_A_B)."""
    env = "STATE_SERVICE_" + name.removeprefix("--").replace("-", "_").upper()
    return click.option(
        name, envvar=env, type=kind, default=default, show_default=True, help=help_text
    )


class Seconds(click.ParamType):
    """A duration in seconds: a finite number above zero (0 would busy-loop, a negative lease
    would let a second run take over a live one)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r}: give a finite number of seconds above 0", param, ctx)
        return seconds


def database_url_of(ctx: click.Context, sub_db: str | None) -> str:
    """The URL to use, refused as an argument error (exit 2) when it cannot work: before any
    lease is taken or anything is written."""
    url: str = sub_db or ctx.obj["db"]
    try:
        check_usable(url)
    except UnusableUrl as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None
    return url


def command_line(text: str, option: str) -> list[str]:
    try:
        args = shlex.split(text)
    except ValueError as exc:  # an unterminated quote: say so before any lease is taken
        raise click.BadParameter(
            f"cannot split the command line: {exc}", param_hint=option
        ) from None
    if not args:
        raise click.BadParameter("empty command line", param_hint=option)
    return args


def open_store(
    ctx: click.Context, sub_db: str | None, *, read_only: bool = False
) -> tuple[Store, str]:
    url = database_url_of(ctx, sub_db)
    return Store(url, ctx.obj["timeouts"], read_only=read_only), url


def print_table(rows: list[dict[str, Any]]) -> None:
    """``rows`` as aligned columns. Every cell loses its control characters: a pipeline name, a
    stored error or stream name may hold escape bytes that would drive the terminal."""
    if not rows:
        click.echo("(none)")
        return
    columns = list(rows[0])
    cells = [{c: printable(str(row[c])) for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in cells:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


class Cli(click.Group):
    """Turns the service's own errors into one clear line, ``state-service: error: ...``, and
    exit 3 (a traceback with --debug or STATE_SERVICE_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StateServiceError as exc:
            debug = bool(ctx.obj and ctx.obj.get("debug")) or None  # else STATE_SERVICE_DEBUG
            fail("state-service", str(exc), EXIT_REFUSED, exc=exc, debug=debug)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar=URL_ENV,
    default=DEFAULT_URL,
    show_default=True,
    help="SQLAlchemy URL of the state database.",
)
@setting("--connect-timeout", Timeouts.connect, "Seconds to wait for the database to connect.")
@setting(
    "--statement-timeout",
    Timeouts.statement,
    "Seconds one statement may take (or wait for a lock) before it fails.",
)
@setting(
    "--history-keep",
    Retention.keep,
    "Bookmark history: newest writes kept per pipeline after each run (0: all).",
)
@setting(
    "--history-days",
    Retention.days,
    "Bookmark history: writes older than this go after each run (0: never).",
)
@click.option("--debug", is_flag=True, envvar="STATE_SERVICE_DEBUG", help="Tracebacks on errors.")
@click.pass_context
def main(
    ctx: click.Context,
    db: str,
    connect_timeout: float,
    statement_timeout: float,
    history_keep: int,
    history_days: float,
    debug: bool,
) -> None:
    """Run Singer pipelines under a fenced lease and keep their bookmarks."""
    ctx.obj = {
        "db": db,
        "timeouts": Timeouts(connect_timeout, statement_timeout),
        "retention": Retention(history_keep, history_days),
        "debug": debug,
    }


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("pipeline")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--tap", help='Tap command line, e.g. "tap-jira-safe --config c.json".')
@click.option("--target", help="Target command line; its stdout must be Singer STATE lines.")
@setting(
    "--lease-seconds",
    60.0,
    "The lease expires this long after the last heartbeat (database clock).",
    Seconds(),
)
@setting("--heartbeat-seconds", 10.0, "Heartbeat interval.", Seconds())
@setting(
    "--stop-grace-seconds",
    DEFAULT_STOP_GRACE,
    "A child still running this long after SIGTERM gets SIGKILL.",
    Seconds(),
)
@setting(
    "--target-finish-seconds",
    DEFAULT_TARGET_FINISH,
    "After the tap ended, the target's time to commit and exit before it is stopped.",
    Seconds(),
)
@click.option(
    "--target-state-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="target-postgres-atomic's config file, to resume from its committed state when that "
    "is newer (default: the --config of a target-postgres-atomic --target command).",
)
@click.option("--force", is_flag=True, help="Take the lease even from a live run (fencing it).")
@db_option
@click.pass_context
def run(
    ctx: click.Context,
    pipeline: str,
    command: tuple[str, ...],
    tap: str | None,
    target: str | None,
    lease_seconds: float,
    heartbeat_seconds: float,
    stop_grace_seconds: float,
    target_finish_seconds: float,
    target_state_config: Path | None,
    force: bool,
    sub_db: str | None,
) -> None:
    """Run PIPELINE: --tap/--target, or any command after `--`, under the pipeline's lease."""
    if bool(command) == bool(tap and target) or bool(tap) != bool(target):
        raise click.UsageError("give either --tap and --target, or a command after `--`")
    if heartbeat_seconds >= lease_seconds:
        raise click.UsageError("--heartbeat-seconds must be shorter than --lease-seconds")
    pipe = None
    if tap and target:
        pipe = (command_line(tap, "--tap"), command_line(target, "--target"))
    timeouts: Timeouts = ctx.obj["timeouts"]
    limits = Limits(heartbeat_seconds, stop_grace_seconds, target_finish_seconds, timeouts.connect)
    store, url = open_store(ctx, sub_db)
    kind = "singer" if pipe else "command"
    held = leases.start(store, pipeline, lease_seconds=lease_seconds, kind=kind, force=force)
    click.echo(
        f"state-service: run {held.run_id} of {pipeline!r} holds token {held.token}", err=True
    )
    retention = ctx.obj["retention"]
    if pipe:
        debug = bool(ctx.obj["debug"]) or debug_wanted("state-service")
        code = run_singer(store, held, pipe, limits, retention, target_state_config, debug)
    else:
        code = run_command(store, held, url, list(command), limits, retention)
    sys.exit(code)


@main.command("status")
@db_option
@click.pass_context
def status_command(ctx: click.Context, sub_db: str | None) -> None:
    """Every pipeline: latest run, holder, heartbeat and bookmark ages (database clock)."""
    print_table(status(open_store(ctx, sub_db)[0]))


@main.command()
@click.argument("pipeline")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@db_option
@click.pass_context
def runs(ctx: click.Context, pipeline: str, limit: int, sub_db: str | None) -> None:
    """The latest runs of PIPELINE, newest first, with records per stream (tap/target)."""
    print_table(run_history(open_store(ctx, sub_db)[0], pipeline, limit))


@main.group()
def state() -> None:
    """Read or edit a pipeline's bookmark (edits take the lease, so never beside a live run)."""


@state.command("get")
@click.argument("pipeline")
@db_option
@click.pass_context
def state_get(ctx: click.Context, pipeline: str, sub_db: str | None) -> None:
    """Print PIPELINE's Singer state as JSON ({} when there is none)."""
    click.echo(read_bookmark(open_store(ctx, sub_db)[0], pipeline) or "{}")


@state.command("set")
@click.argument("pipeline")
@click.argument("file", type=click.File("r"))
@db_option
@click.pass_context
def state_set(ctx: click.Context, pipeline: str, file: Any, sub_db: str | None) -> None:
    """Replace PIPELINE's state with the JSON object in FILE (`-` for stdin)."""
    text = file.read()
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="FILE") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("the state must be a JSON object", param_hint="FILE")
    _edit(ctx, open_store(ctx, sub_db)[0], pipeline, json.dumps(parsed))


@state.command("clear")
@click.argument("pipeline")
@db_option
@click.pass_context
def state_clear(ctx: click.Context, pipeline: str, sub_db: str | None) -> None:
    """Forget PIPELINE's state (kept in the history)."""
    _edit(ctx, open_store(ctx, sub_db)[0], pipeline, None)


def _edit(ctx: click.Context, store: Store, pipeline: str, new_state: str | None) -> None:
    held = leases.start(store, pipeline, lease_seconds=60, kind="edit")
    leases.finish(store, held, exit_code=0, final_state=new_state, clear_state=new_state is None)
    prune(store, ctx.obj["retention"], pipeline)
    click.echo(
        f"state-service: state of {pipeline!r} {'set' if new_state else 'cleared'}", err=True
    )


@main.command()
@click.argument("pipeline")
@click.option("--force", is_flag=True, help="Take a live lease too, fencing out its holder.")
@db_option
@click.pass_context
def reclaim(ctx: click.Context, pipeline: str, force: bool, sub_db: str | None) -> None:
    """Take PIPELINE's lease from a stale run (any run with --force); it is marked RECLAIMED."""
    run_id = leases.reclaim(open_store(ctx, sub_db)[0], pipeline, force=force)
    click.echo(f"state-service: run {run_id} of {pipeline!r} reclaimed")


@main.command("prune")
@click.argument("pipeline", required=False)
@click.option("--keep", type=int, help="Newest writes kept per pipeline (default --history-keep).")
@click.option("--days", type=float, help="Writes older than this go (default --history-days).")
@db_option
@click.pass_context
def prune_command(
    ctx: click.Context,
    pipeline: str | None,
    keep: int | None,
    days: float | None,
    sub_db: str | None,
) -> None:
    """Prune the bookmark history of PIPELINE (or every pipeline); the newest write stays."""
    default: Retention = ctx.obj["retention"]
    retention = Retention(
        default.keep if keep is None else keep, default.days if days is None else days
    )
    deleted = prune(open_store(ctx, sub_db)[0], retention, pipeline)
    click.echo(f"state-service: {deleted} bookmark history rows pruned")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option(
    "--token",
    envvar="STATE_SERVICE_SERVE_TOKEN",
    help="Required from every request (?token= or Bearer); needed to bind beyond loopback.",
)
@click.option(
    "--refresh",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Seconds between page reloads.",
)
@click.option(
    "--read-timeout",
    type=Seconds(),
    default=READ_TIMEOUT,
    show_default=True,
    help="A connection silent this long is closed.",
)
@db_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    refresh: int,
    read_timeout: float,
    sub_db: str | None,
) -> None:
    """A read-only status page (and /metrics for Prometheus): pipelines, leases, runs."""
    if not token and not is_loopback(host):
        raise click.UsageError(f"--token (or STATE_SERVICE_SERVE_TOKEN) is required on {host}")
    store = open_store(ctx, sub_db, read_only=True)[0]
    server = make_server(store, host, port, token or None, refresh, read_timeout)
    bound_port = server.server_address[1]
    click.echo(
        f"state-service: serving http://{host}:{bound_port}/ read-only from {store.display}",
        err=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
