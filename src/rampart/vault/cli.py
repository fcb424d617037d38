"""`rampart keys ...` and `rampart backup ...`.

The commands need the whole container (the audit log records every key event), which only the
top layer may build, so `rampart.cli` hands a container factory to `mount`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rampart.vault.domain import KeyStateError, Purpose, VaultError

keys_app = typer.Typer(
    help="Vault keys: status, rotation, KEK rotation, destruction, shredding.",
    no_args_is_help=True,
)
backup_app = typer.Typer(
    help="Encrypted database backups: create, verify, restore, prune.", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

_factory: Callable[..., Any] | None = None


def mount(app: typer.Typer, container_factory: Callable[..., Any]) -> None:
    """Add the `keys` and `backup` groups to `app`.

    `container_factory(database_url=None, check=True)` builds a Container (on another database
    if given); `check=False` skips the check that the database exists and is current, for the
    commands that need only the keys (a restore builds the database it then opens).
    """
    global _factory
    _factory = container_factory
    app.add_typer(keys_app, name="keys")
    app.add_typer(backup_app, name="backup")


@contextmanager
def _container(database_url: str | None = None, *, check: bool = True) -> Iterator[Any]:
    if _factory is None:
        raise RuntimeError("rampart.vault.cli.mount was not called")
    container = _factory(database_url=database_url, check=check)
    try:
        yield container
    finally:
        container.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]{message}[/]")
    return typer.Exit(code)


PurposeOption = Annotated[
    Purpose | None,
    typer.Option("--purpose", "-p", help="Only this purpose (default: every purpose)."),
]


# --- keys --------------------------------------------------------------------------------
@keys_app.command("status")
def keys_status() -> None:
    """Every key version: state, age, wrapping KEK and how many ciphertexts it protects."""
    with _container() as container, container.uow() as uow:
        rows = container.vault.rotation.status(uow)
        kek_id = container.vault.provider.kek_id
    table = Table(title=f"vault keys (configured KEK {kek_id})")
    for name in ("key", "version", "state", "age (days)", "wrapped by", "ciphertexts"):
        table.add_column(name)
    for row in rows:
        wrapped = row.kek_id or "-"
        if row.kek_id and row.kek_id != kek_id:
            wrapped += " [yellow](old KEK: run rotate-kek)[/]"
        table.add_row(
            row.family,
            str(row.version),
            row.state,
            f"{row.age_days:.1f}",
            wrapped,
            "-" if row.ciphertexts is None else str(row.ciphertexts),
        )
    out.print(table)


def _run_reencryption(container: Any, purpose: Purpose | None) -> None:
    from rampart.vault.jobs import pending_count, reencrypt

    total = pending_count(container.vault, container.uow, purpose)
    if total == 0:
        console.print("every ciphertext is on its current key version")
        return
    progress = Progress(
        TextColumn("re-encrypting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("reencrypt", total=total)

        def advance(_column: Any, result: Any, _done: int) -> None:
            progress.advance(
                task, result.reencrypted + result.shredded + result.unreadable + result.skipped
            )

        report = reencrypt(container.vault, container.uow, purpose, on_batch=advance)
    console.print(
        f"re-encrypted {report.reencrypted}; shredded (left as is) {report.shredded}; "
        f"unreadable {report.unreadable}; changed meanwhile {report.skipped}"
    )
    if report.unreadable or report.skipped:
        console.print("run `rampart keys reencrypt` again; unreadable rows are in the log")


@keys_app.command("rotate")
def keys_rotate(
    purpose: PurposeOption = None,
    reencrypt: Annotated[
        bool, typer.Option(help="Re-encrypt older ciphertexts right away.")
    ] = True,
) -> None:
    """Start a new data-key version (new writes use it at once), then re-encrypt."""
    with _container() as container:
        with container.uow() as uow:
            created = container.vault.rotation.rotate(uow, purpose)
            uow.commit()
        for family, version in created:
            console.print(f"{family}: now version {version}")
        if reencrypt:
            _run_reencryption(container, purpose)


@keys_app.command("reencrypt")
def keys_reencrypt(purpose: PurposeOption = None) -> None:
    """Move every ciphertext to its purpose's current key version (resumable, batched)."""
    with _container() as container:
        _run_reencryption(container, purpose)


@keys_app.command("rotate-kek")
def keys_rotate_kek() -> None:
    """Re-wrap every data key under the configured KEK; no data is touched.

    Set RAMPART_VAULT__KEK to the new KEK and RAMPART_VAULT__PREVIOUS_KEKS to the old one(s),
    run this, then remove the previous KEKs from the configuration.
    """
    with _container() as container:
        try:
            with container.uow() as uow:
                moved = container.vault.rotation.rewrap_all(uow)
                uow.commit()
        except VaultError:
            raise _fail(
                "a data key could not be unwrapped: is its KEK in RAMPART_VAULT__PREVIOUS_KEKS?"
            ) from None
        console.print(f"re-wrapped {moved} data keys under KEK {container.vault.provider.kek_id}")
        # Backups carry their own file key wrapped by the KEK of their day: dropping the previous
        # KEK makes them unrestorable (by design, it also shreds old backups). Say so now.
        console.print(
            "backups made before now open only with the previous KEK: keep it offline for as "
            "long as you keep those backups, and take a new backup under this KEK"
        )


@keys_app.command("destroy")
def keys_destroy(
    purpose: Annotated[Purpose, typer.Option("--purpose", "-p")],
    version: Annotated[int, typer.Option("--version", "-v", min=1)],
) -> None:
    """Destroy a retired key version that no ciphertext uses any more (irreversible)."""
    with _container() as container:
        try:
            with container.uow() as uow:
                container.vault.rotation.destroy_version(uow, purpose, version)
                uow.commit()
        except KeyStateError as exc:
            raise _fail(f"refused: {exc.detail}") from None
        console.print(f"{purpose.value} version {version} destroyed")


@keys_app.command("shred-user")
def keys_shred_user(
    user_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Destroy a user's keys: everything sealed for them becomes unreadable, backups included."""
    if not yes:
        raise _fail("shredding is irreversible; repeat with --yes", 2)
    with _container() as container:
        # A mistyped id would otherwise "succeed": recorded in the shred register, nothing shred.
        with container.db.read() as session:
            known = container.identity.accounts.exists(session, user_id)
        if not known:
            raise _fail(f"refused: no user has the id {user_id[:64]!r}")
        with container.uow() as uow:
            count = container.vault.shredding.shred_user(uow, user_id)
            uow.commit()
        console.print(f"destroyed {count} keys; the user is in the shred register")


# --- backups -----------------------------------------------------------------------------
DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Backup directory (default RAMPART_VAULT__BACKUP_DIR).")
]
KeepOption = Annotated[int | None, typer.Option("--keep-days", min=1, help="Retention in days.")]


def _backup_dir(container: Any, given: Path | None) -> Path:
    from rampart.vault.setup import backup_dir

    return given or backup_dir(container.settings)


@backup_app.command("create")
def backup_create(directory: DirOption = None, keep_days: KeepOption = None) -> None:
    """Write an encrypted backup of the database, then prune old ones."""
    from rampart.vault.backup import create_backup, prune

    with _container() as container:
        target = _backup_dir(container, directory)
        info = create_backup(
            container.settings.effective_database_url,
            target,
            container.vault.provider,
            container.clock,
        )
        out.print(str(info.path))
        removed = prune(
            target, keep_days or container.settings.vault.backup_keep_days, container.clock
        )
        if removed:
            console.print(f"pruned {len(removed)} backups older than the retention period")


@backup_app.command("verify")
def backup_verify(path: Path) -> None:
    """Authenticate a whole backup file without restoring it."""
    from rampart.vault.backup import verify

    with _container(check=False) as container:
        try:
            info = verify(path, container.vault.provider)
        except OSError as exc:
            raise _fail(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        except VaultError:
            raise _fail("the backup is truncated, altered or not readable with this KEK") from None
    console.print(f"ok: {info.backend} backup of {info.created_at.isoformat()}")


@backup_app.command("restore")
def backup_restore(
    path: Path,
    database_url: Annotated[
        str | None,
        typer.Option(help="The empty database to restore into (default: the configured one)."),
    ] = None,
) -> None:
    """Restore a backup into an empty database, then re-apply the shred register."""
    from rampart.vault.backup import restore_backup
    from rampart.vault.register import ShredRegister
    from rampart.vault.setup import shred_register_path

    # Only the keys and settings: the database may be the very thing being rebuilt.
    with _container(check=False) as container:
        url = database_url or container.settings.effective_database_url
        provider = container.vault.provider
        settings = container.settings
    try:
        info = restore_backup(path, url, provider)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or path
        raise _fail(f"refused: cannot use {where}: {reason}; nothing was restored") from None
    except VaultError as exc:
        raise _fail(f"refused: {exc.detail}; nothing was restored") from None
    shredded = ShredRegister(shred_register_path(settings)).user_ids()
    # A restored schema may be older than this code (`rampart db upgrade` comes next).
    with _container(database_url=url, check=False) as restored, restored.uow() as uow:
        restored.vault.shredding.apply_shreds(uow, shredded)
        uow.commit()
    console.print(
        f"restored the {info.backend} backup of {info.created_at.isoformat()}; "
        f"re-applied {len(shredded)} shredded users"
    )


@backup_app.command("list")
def backup_list(directory: DirOption = None) -> None:
    """The backups in the backup directory, oldest first."""
    from rampart.vault.backup import list_backups

    with _container(check=False) as container:
        for when, item in list_backups(_backup_dir(container, directory)):
            out.print(f"{when.isoformat()}  {item.stat().st_size:>12,}  {item}")


@backup_app.command("prune")
def backup_prune(directory: DirOption = None, keep_days: KeepOption = None) -> None:
    """Delete backups older than --keep-days (default 30); the newest one is always kept."""
    from rampart.vault.backup import prune

    with _container(check=False) as container:
        removed = prune(
            _backup_dir(container, directory),
            keep_days or container.settings.vault.backup_keep_days,
            container.clock,
        )
    console.print(f"pruned {len(removed)} backups")
