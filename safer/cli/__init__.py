"""The ``safer`` command: thin wiring over the library, one module per command group.

Every user error is a :class:`safer.errors.SaferError`; :func:`main` prints its message (no
traceback) and exits with status 2. Numbers go to stdout (``--json`` prints JSON only);
progress bars go to stderr.
"""

from __future__ import annotations

import sys

import typer

from safer import __version__
from safer.cli import benchmark, cohort, conformal, db, demo, model, mortality, seqrec, tsedit
from safer.cli._common import err_console
from safer.errors import SaferError

__all__ = ["app", "main"]

app = typer.Typer(
    name="safer",
    help="SAFER: safe, conformally-gated treatment recommendation for sepsis in the ICU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cohort.app, name="cohort")
app.add_typer(seqrec.app, name="seqrec")
app.add_typer(tsedit.app, name="tsedit")
app.command("demo")(demo.demo)
app.command("train")(model.train)
app.command("evaluate")(model.evaluate)
app.command("calibrate")(conformal.calibrate)
app.command("audit")(conformal.audit)
app.add_typer(db.app, name="db")
app.add_typer(db.audit_app, name="audit-trail")
app.command("console")(db.console)
app.command("mortality")(mortality.mortality)
app.command("benchmark", help=benchmark.HELP)(benchmark.benchmark)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"safer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """SAFER: safe, conformally-gated treatment recommendation for sepsis in the ICU."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``safer`` console script."""
    try:
        app(args=argv, prog_name="safer")
    except SaferError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
