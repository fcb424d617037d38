"""`rampart audit`: verify the log (from the database or an export file), export it, sign now.

`verify` exits 0 when every entry, root and signature checks out, 1 when anything does not (and
names the first entry that does not match), 2 when it cannot run (bad file, bad key).

The log is checked under its own origin (recorded with its signing key), not one derived from
this shell's settings: a shell with another port or public URL verifies the same log. An explicit
`RAMPART_AUDIT__ORIGIN` that disagrees with the log is reported as an origin mismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rampart.audit.batch_check import VerifyReport
from rampart.audit.checkpoints import (
    CheckpointSink,
    DirectorySink,
    HttpWitnessSink,
    SinkUnavailableError,
    build_sink,
)
from rampart.audit.export import ExportFormatError, read_export
from rampart.audit.notes import NoteError, parse_verifier_key
from rampart.audit.verify import verify_log

app = typer.Typer(help="The audit log: verify, export, checkpoint.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

KeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        help="A verifier key (name+id+base64) to trust, e.g. from the log's published keys. "
        "Repeatable.",
    ),
]


def _settings():  # type: ignore[no-untyped-def]
    from rampart.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        console.print("[bold red]Refusing to run: the configuration is unsafe.[/]")
        for problem in exc.problems:
            console.print(f"  - {problem}")
        raise typer.Exit(2) from None


def _open_log(settings):  # type: ignore[no-untyped-def]
    """The database (checked to exist and be current first) and a reader of its log."""
    from rampart.audit.checkpoints import default_origin
    from rampart.audit.service import AuditReader
    from rampart.platform.db import Database
    from rampart.platform.migrate import check_current

    check_current(settings.effective_database_url)
    db = Database(settings.effective_database_url, pool_size=2)
    reader = AuditReader(
        db,
        origin=default_origin(settings),
        max_page_size=1,
        origin_configured=settings.audit.origin is not None,
    )
    return db, reader


def _keys(texts: list[str] | None) -> list[tuple[str, bytes]]:
    try:
        return [parse_verifier_key(text) for text in texts or []]
    except NoteError as exc:
        console.print(f"[bold red]Not a valid verifier key:[/] {exc}")
        raise typer.Exit(2) from None


def _progress_bar(total: int) -> tuple[Progress, object]:
    progress = Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=total < 100_000 or not console.is_terminal,
    )
    return progress, progress.add_task("entries", total=total)


def _print_report(report: VerifyReport, where: str) -> None:
    if report.ok:
        console.print(
            f"[bold green]OK[/] {where}: {report.entries} entries, "
            f"{report.checkpoints} signed checkpoints"
            + (
                f", consistent with the shipped checkpoint of size {report.sink_size}"
                if report.sink_size is not None
                else ""
            )
        )
        return
    console.print(f"[bold red]FAILED[/] {where}: {report.entries} entries read")
    if report.first_bad_seq is not None:
        console.print(f"  first entry that does not match: [bold]{report.first_bad_seq}[/]")
    for problem in report.problems:
        console.print(f"  - {problem}")


@app.command("verify")
def verify(
    export: Annotated[
        Path | None,
        typer.Option(help="Verify this export file instead of the database (no database needed)."),
    ] = None,
    key: KeyOption = None,
    sink: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint sink to compare against (directory or URL); default: the "
            "configured one."
        ),
    ] = None,
    no_sink: Annotated[
        bool, typer.Option("--no-sink", help="Do not compare with a shipped checkpoint.")
    ] = False,
    thorough: Annotated[
        bool,
        typer.Option(
            "--thorough",
            help="Check the canonical form of every entry, not only of those no signed root "
            "covers and a random sample of the rest (SQLite; slower).",
        ),
    ] = False,
) -> None:
    """Recompute every leaf and root, check every checkpoint signature and the newest shipped
    checkpoint; report the first entry that does not match (exit code 1)."""
    trusted = _keys(key)
    if export is not None:
        _verify_export(export, trusted, sink, no_sink)
        return
    from rampart.audit.setup import build_signer
    from rampart.platform.keys import RootKeys

    settings = _settings()
    db, reader = _open_log(settings)
    try:
        # The configured key is trusted under the log's own name: the name is not what makes a
        # signature, the private key is (and the origin inside each note is signed).
        signer = build_signer(settings, RootKeys(settings))
        trusted.append((reader.origin, signer.public_key))
        chosen: CheckpointSink | None = None
        if not no_sink:
            chosen = _sink(sink) if sink else build_sink(settings)
        size, _ = reader.state()
        progress, task = _progress_bar(size)
        with progress:
            report = reader.verify(
                sink=chosen,
                trusted_keys=trusted,
                progress=lambda n: progress.update(task, completed=n),  # type: ignore[arg-type]
                thorough=thorough,
            )
    finally:
        db.dispose()
    _print_report(report, f"audit log {reader.origin}")
    if not report.ok:
        raise typer.Exit(1)


def _sink(target: str) -> CheckpointSink:
    if target.startswith(("http://", "https://")):
        return HttpWitnessSink(target)
    return DirectorySink(Path(target))


def _verify_export(path: Path, trusted: list[tuple[str, bytes]], sink: str | None, no_sink: bool):  # type: ignore[no-untyped-def]
    try:
        exported = read_export(path)
    except (OSError, ExportFormatError, NoteError) as exc:
        console.print(f"[bold red]Cannot read the export:[/] {exc}")
        raise typer.Exit(2) from None
    if not trusted:
        console.print(
            "[yellow]No --key given: trusting the keys inside the file. Pass the log's "
            "published verifier key to check who signed it.[/]"
        )
    keys = trusted or exported.keys
    sink_note = None
    if sink and not no_sink:
        sink_note = _sink(sink).latest()
    progress, task = _progress_bar(exported.size)
    try:
        with progress:
            report = verify_log(
                exported.entries(),
                checkpoint_notes=exported.checkpoint_notes,
                keys=keys,
                origin=exported.origin,
                sink_note=sink_note,
                expected_size=exported.size,
                progress=lambda n: progress.update(task, completed=n),  # type: ignore[arg-type]
            )
    except ExportFormatError as exc:
        console.print(f"[bold red]Cannot read the export:[/] {exc}")
        raise typer.Exit(2) from None
    _print_report(report, f"export {path.name} of {exported.origin}")
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Where to write the export ('-' for stdout).")],
) -> None:
    """Write the whole log (entries, checkpoints, public keys) as a verifiable JSON-lines file."""
    from rampart.kernel.clock import SystemClock

    settings = _settings()
    db, reader = _open_log(settings)
    try:
        lines = reader.export(SystemClock().time_ns())
        if str(file) == "-":
            for line in lines:
                sys.stdout.buffer.write(line)
        else:
            with file.open("xb") as handle:
                for line in lines:
                    handle.write(line)
    except FileExistsError:
        console.print(f"[bold red]{file} exists;[/] choose a new file name.")
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    console.print(f"exported the audit log to {file}")


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign and ship a checkpoint now if the log grew since the last one."""
    from rampart.audit.setup import build_audit
    from rampart.kernel.clock import SystemClock
    from rampart.platform.db import Database
    from rampart.platform.keys import RootKeys
    from rampart.platform.migrate import check_current

    settings = _settings()
    check_current(settings.effective_database_url)
    db = Database(settings.effective_database_url, pool_size=2)
    try:
        audit = build_audit(settings, RootKeys(settings), SystemClock(), db)
        signed = audit.checkpointer.checkpoint()
    except SinkUnavailableError as exc:
        console.print(
            f"[bold yellow]Signed and stored, but not shipped:[/] {exc} "
            f"({type(exc.__cause__).__name__}); the running service ships it on its next round."
        )
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if signed is None:
        console.print("no new entries since the last checkpoint")
    else:
        console.print(signed.note, end="")


@app.command("keys")
def keys() -> None:
    """Print the verifier key of the configured signing key under the log's origin (give it to
    auditors)."""
    from rampart.audit.setup import build_signer
    from rampart.platform.keys import RootKeys

    settings = _settings()
    db, reader = _open_log(settings)
    try:
        origin = reader.origin
    finally:
        db.dispose()
    signer = build_signer(settings, RootKeys(settings))
    typer.echo(signer.renamed(origin).verifier_key)
