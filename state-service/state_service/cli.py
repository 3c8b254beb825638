"""The `state-service` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="STATE_SERVICE_DATABASE_URL",
    default="sqlite:///.state-service/state.db",
    show_default=True,
    help="SQLAlchemy URL of the state database.",
)
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """Run Singer pipelines under a fenced lease and keep their bookmarks."""
    ctx.obj = {"db": db}


if __name__ == "__main__":
    main()
