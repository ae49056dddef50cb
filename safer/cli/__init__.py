"""The ``safer`` command: thin wiring over the library, one module per command group.

Every user error is a :class:`safer.errors.SaferError`; :func:`main` prints its message (no
traceback) and exits with status 2 (so does a file the operating system refuses). Numbers go to
stdout (``--json`` prints JSON only); progress bars, warnings and messages go to stderr.

Commands load lazily: :data:`COMMANDS` names the module of each, and only the module of the
command being run is imported, so ``safer --help`` and ``safer --version`` import neither torch
nor pandas (and each command module imports its heavy packages inside its functions).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import OptionInfo

from safer import __version__
from safer.errors import SaferError

__all__ = ["COMMANDS", "app", "main"]

#: command name -> (module, attribute, the one-line help shown by ``safer --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cohort": (
        "safer.cli.cohort",
        "app",
        "Build (simulated, MIMIC-III/IV, MEDS), validate and summarise cohort tables.",
    ),
    "seqrec": (
        "safer.cli.seqrec", "app", "General sequential recommenders on RecBole's protocol."
    ),
    "tsedit": (
        "safer.cli.tsedit", "app",
        "Diffusion time-series editing: point anchors and segment statistics.",
    ),
    "demo": (
        "safer.cli.demo", "demo",
        "Run the whole pipeline on the embedded ICU-Sepsis cohort and print what each stage "
        "gives.",
    ),
    "train": (
        "safer.cli.model", "train",
        "Train a recommender on the train split of COHORT (early stopping inside train only).",
    ),
    "evaluate": (
        "safer.cli.model", "evaluate",
        "Score a saved model on one split of COHORT (split recomputed from the model's seed "
        "and fractions).",
    ),
    "calibrate": (
        "safer.cli.conformal", "calibrate",
        "Calibrate a gate on the model's calibration split only.",
    ),
    "audit": (
        "safer.cli.conformal", "audit",
        "Audit a gate on the test split: realised guarantees, subgroups, trade-off plot.",
    ),
    "db": ("safer.cli.db", "app", "Create, migrate and fill the SAFER database."),
    "audit-trail": ("safer.cli.db", "audit_app", "Check the audit trail of the SAFER database."),
    "console": (
        "safer.cli.db", "console",
        "Start the Streamlit clinician console on the configured database.",
    ),
    "mortality": (
        "safer.cli.mortality", "mortality",
        "True mortality of a policy in the known ICU-Sepsis MDP (absolute, fraction of episodes).",
    ),
    "benchmark": (
        "safer.cli.benchmark", "benchmark",
        "Every model on one simulated cohort's splits: metrics and true mortality in one table.",
    ),
}  # fmt: skip


def load_command(name: str) -> Any:
    """Import the module of command ``name`` and build its command (a module's ``HELP``, if
    it has one, is the long help of its command)."""
    module_name, attribute, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    if isinstance(target, typer.Typer):
        _non_negative_seeds(*_callbacks(target))
        command = typer.main.get_group(target)  # a group even with one command
    else:
        _non_negative_seeds(target)
        single = typer.Typer(pretty_exceptions_enable=False)
        single.command(name, help=getattr(module, "HELP", None))(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


def _callbacks(group: typer.Typer) -> list[Any]:
    """The command functions of ``group`` and of the groups nested in it (``seqrec ctr``)."""
    found = [c.callback for c in group.registered_commands]
    for sub in group.registered_groups:
        found += _callbacks(sub.typer_instance)
    return found


def _non_negative_seeds(*callbacks: Any) -> None:
    # every --seed takes a non-negative integer (NumPy's generators refuse negative seeds), so a
    # negative one is a usage error naming the option, never a traceback from deep inside
    for callback in callbacks:
        for param in inspect.signature(callback).parameters.values():
            info = param.default
            seed = param.name == "seed" or param.name.endswith("_seed")
            if seed and isinstance(info, OptionInfo) and info.min is None:
                info.min = 0


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them, loads the one invoked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, Any] = {}
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name in self._loaded:
            return self._loaded[cmd_name]
        if self._listing:  # the help page shows names and one-line helps only
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        self._loaded[cmd_name] = load_command(cmd_name)
        return self._loaded[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="safer",
    cls=LazyGroup,
    help="SAFER: safe, conformally-gated treatment recommendation for sepsis in the ICU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from safer.cli._common import err_console

    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``safer`` console script."""
    from safer.cli._common import err_console

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            app(args=argv, prog_name="safer")
    except SaferError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
    except OSError as exc:  # a file the operating system refuses: say which, and why
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] cannot use{where}: {exc.strerror or exc}; check the path "
            "and its permissions",
            highlight=False,
            markup=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy."):
            raise  # a bug: its traceback is what a report needs
        # a database the store cannot use (a table missing, a constraint broken by hand);
        # parameters are hidden by the store's engines, so this holds no patient data
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err_console.print(
            f"[bold red]error:[/] the database refused the operation ({first}); is it damaged "
            "or edited by hand? Restore a backup or check it with `safer audit-trail verify`. "
            "Nothing was written.",
            highlight=False,
            markup=True,
        )
        sys.exit(2)
