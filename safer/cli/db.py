"""``safer db``, ``safer audit-trail`` and ``safer console``: the store and the clinician console.

The database is ``--db URL`` if given, else ``$SAFER_DB_URL``, else ``sqlite:///safer.db``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.errors import SaferError

app = typer.Typer(help="Create, migrate and fill the SAFER database.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit trail of the SAFER database.", no_args_is_help=True)

_DB = typer.Option(
    None, "--db", help="Database URL (default: $SAFER_DB_URL or sqlite:///safer.db)."
)


@app.command("upgrade")
def upgrade_cmd(db: str | None = _DB) -> None:
    """Create the schema or apply pending migrations (back up first on a live database)."""
    from safer.store import database_url, safe_url, upgrade

    url = database_url(db)
    revision = upgrade(url)
    err_console.print(f"[green]ok:[/] {safe_url(url)} is at migration {revision}")


@app.command("add-user")
def add_user_cmd(
    username: str = typer.Argument(..., help="User name (1-64 characters)."),
    role: str = typer.Option(..., "--role", help="clinician, auditor or admin."),
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
        help="Password (prompted, hidden, when not given).",
    ),
    db: str | None = _DB,
) -> None:  # fmt: skip
    """Add a console user; the password is stored as an argon2 hash.

    The name is normalised (case-folded; a-z, 0-9, '.', '_', '-') and refused when it looks
    like an existing user's; the password must pass the policy (docs/console.md).
    """
    from safer.store import add_user, connect

    Session = connect(db)
    with Session() as session, session.begin():
        user = add_user(session, username, password, role=role, actor="cli")
    err_console.print(f"[green]ok:[/] added {user.username} ({user.role})")


@app.command("set-role")
def set_role_cmd(
    username: str = typer.Argument(..., help="User name."),
    role: str | None = typer.Option(None, "--role", help="New role: clinician, auditor, admin."),
    active: bool | None = typer.Option(
        None, "--active/--inactive", help="Reactivate, or deactivate (cannot sign in)."
    ),
    db: str | None = _DB,
) -> None:
    """Change a user's role or deactivate them; every change is an audit-trail event."""
    from safer.store import connect, set_active, set_role

    if role is None and active is None:
        raise SaferError("say what to change: --role ROLE and/or --active/--inactive")
    Session = connect(db)
    with Session() as session, session.begin():
        if role is not None:
            user = set_role(session, username, role, actor="cli")
        if active is not None:
            user = set_active(session, username, active, actor="cli")
    state = "active" if active is None or active else "inactive"
    err_console.print(f"[green]ok:[/] {user.username} is now {user.role} ({state})")


@app.command("load")
def load_cmd(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    model: Path = typer.Option(..., "--model", help="Trained model folder (safer train --out)."),
    gate: Path | None = typer.Option(
        None, "--gate", help="Conformal gate file (safer calibrate --out); without it, plain "
        "argmax, flagged as low-confidence when the top probability is below 0.5.",
    ),
    source: str = typer.Option(
        "default", "--source", help="Where the cohort's stay ids come from (e.g. mimic-iv): "
        "a stay is its source, its id and its data.",
    ),
    correct: bool = typer.Option(
        False, "--correct", help="The cohort corrects stays already stored under these ids: "
        "store each changed stay as a new version (the old one is kept; audited).",
    ),
    db: str | None = _DB,
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:  # fmt: skip
    """Store a cohort's stays and the model's (gated) recommendations; idempotent.

    A gate calibrated for another model is refused before anything is written, and so is a stay
    id already stored with other data (another patient) unless --correct says it is corrected
    data for the same patient.
    """
    from safer.cohorts import read_cohort
    from safer.conformal import load_gate
    from safer.models import load_model
    from safer.store import connect, store_decisions

    Session = connect(db)
    table = read_cohort(cohort)
    m = load_model(model)
    g = None if gate is None else load_gate(gate, model_hash=m.content_hash_)
    with Session() as session, session.begin():
        counts = store_decisions(session, table, m, g, source=source, corrections=correct,
                                 actor="cli", progress=not json_out)  # fmt: skip
    if json_out:
        print_json(counts)
    else:
        print_table("added to the store", counts)


@audit_app.command("verify")
def verify_cmd(
    db: str | None = _DB,
    anchor: list[str] = typer.Option(
        [], "--anchor", help="SEQ:HASH printed (as 'anchor') by an earlier verify --json and "
        "kept elsewhere: check the trail still holds that event. Repeatable.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:  # fmt: skip
    """Check the hash chain against its anchored head, reviews and users (exit 1 if broken).

    The JSON output's "anchor" (SEQ:HASH of the newest event) is the checkpoint to publish
    elsewhere; pass it back with --anchor to catch a trail truncated together with its head.
    """
    from safer.store import connect, verify_trail
    from safer.store.audit import parse_anchor

    anchors = [parse_anchor(a) for a in anchor]
    Session = connect(db)
    with Session() as session:
        report = verify_trail(session, anchor=anchors[0] if anchors else None)
        for extra in anchors[1:]:
            report.problems += verify_trail(session, anchor=extra).problems
        report.problems = list(dict.fromkeys(report.problems))
        report.ok = not report.problems
    if json_out:
        print_json(report.as_dict())
    elif report.ok:
        err_console.print(
            f"[green]ok:[/] {report.n_events} events, chain intact; anchor "
            f"{report.head_seq}:{report.head_hash}"
        )
    else:
        err_console.print(f"[bold red]audit trail broken[/] ({report.n_events} events):")
        for problem in report.problems:
            err_console.print(f"  - {problem}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def console_app_path() -> Path:
    """Path of the console's ``app.py`` (the installed ``clinical_ui`` package)."""
    spec = importlib.util.find_spec("clinical_ui")
    if spec is None or spec.origin is None:
        raise SaferError("the clinical_ui package is not installed; reinstall SAFER")
    return Path(spec.origin).parent / "app.py"


def streamlit_command(app_py: Path, port: int, address: str = "127.0.0.1") -> list[str]:
    """The command that serves the console's ``app_py`` on ``address:port``: headless, no usage
    statistics, no developer toolbar. The one set of flags for ``safer console``, the browser
    tests and the speed benchmark."""
    return [sys.executable, "-m", "streamlit", "run", str(app_py), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]  # fmt: skip


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving_console(
    app_py: Path, env: dict[str, str], port: int | None = None, ready_s: float = 60.0
) -> Iterator[str]:
    """Serve the console (``streamlit_command``) in the background until the block ends.

    Yields the base address once Streamlit answers its health check; the server is stopped
    when the block exits, also on an error. The one start-and-wait for the browser tests and
    the speed benchmark (``safer console`` itself serves in the foreground).

    Raises
    ------
    SaferError
        If the server exits or does not answer within ``ready_s`` seconds.
    """
    port = free_port() if port is None else port
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        streamlit_command(app_py, port), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + ready_s
        while True:
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise SaferError(
                        f"the console exited with code {proc.returncode} before answering "
                        f"on {base}; run `safer console` to see its error"
                    ) from None
                if time.monotonic() > deadline:
                    raise SaferError(
                        f"the console did not answer on {base} within {ready_s:g} s"
                    ) from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def console(
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
    address: str = typer.Option(
        "127.0.0.1", "--address", help="Interface to listen on: 127.0.0.1 (this machine only, "
        "the default) or e.g. 0.0.0.0 for every interface (put TLS and a firewall in front).",
    ),
    db: str | None = _DB,
    model: Path | None = typer.Option(
        None, "--model", help="Trained SAFER model folder for the what-if page "
        "(default: $SAFER_MODEL_DIR).",
    ),
    gate: Path | None = typer.Option(
        None, "--gate", help="Conformal gate file for the what-if page (default: $SAFER_GATE_PATH)."
    ),
    tsedit: Path | None = typer.Option(
        None, "--tsedit", help="tsedit model folder (safer tsedit train --out) for the what-if "
        "page (default: $SAFER_TSEDIT_DIR).",
    ),
) -> None:  # fmt: skip
    """Start the Streamlit clinician console on the configured database."""
    import ipaddress
    import secrets

    from safer.decisions import WhatIf
    from safer.store import connect, database_url, session_minutes

    try:
        ipaddress.ip_address(address)
    except ValueError:
        if address != "localhost":
            raise SaferError(
                f"--address {address!r} is not an IP address; use 127.0.0.1 (default), "
                "localhost, or the address of one of this machine's interfaces"
            ) from None
    session_minutes()  # refuses a malformed SAFER_SESSION_MINUTES before starting
    url = database_url(db)
    connect(url)  # refuses a stale schema or an unreachable database before starting
    app_py = console_app_path()
    env = dict(os.environ, SAFER_DB_URL=url)
    # signs the session tokens that keep a sign-in across reloads and deep links; a new key per
    # start, so a restart signs everyone out
    env.setdefault("SAFER_SESSION_SECRET", secrets.token_hex(32))
    WhatIf.check_paths(model, gate, tsedit)  # the what-if page loads them: refuse bad ones now
    for var, path in (("SAFER_MODEL_DIR", model), ("SAFER_GATE_PATH", gate),
                      ("SAFER_TSEDIT_DIR", tsedit)):  # fmt: skip
        if path is not None:
            env[var] = str(path.resolve())
    root = str(app_py.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = streamlit_command(app_py, port, address)
    shown = "localhost" if address in ("127.0.0.1", "localhost", "::1") else address
    where = "this machine only" if shown == "localhost" else "every client that can reach it"
    err_console.print(f"console on http://{shown}:{port} for {where} (Ctrl+C to stop)")
    raise typer.Exit(subprocess.call(cmd, env=env))
