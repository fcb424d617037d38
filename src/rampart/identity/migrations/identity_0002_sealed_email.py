"""identity: email addresses sealed by the vault and found by a blind index; no plaintext left

Revision ID: identity_0002

Existing addresses are sealed here, in the migration's own transaction, so that no revision ever
holds them in clear next to their ciphertexts: the plaintext column is dropped in the same
revision that fills the sealed one. Sealing needs the vault (its KEK comes from the settings),
which Alembic cannot build by itself: `rampart db upgrade` hands it in (so does
`rampart.platform.migrate.upgrade(url, attributes=migration_attributes(settings))`, from
`rampart.vault.setup`). Without it, a database that has accounts refuses to migrate (in one
transaction, on both databases, so nothing is left half-done) and says how; an empty one needs
nothing.

A person the vault has shredded already can have nothing sealed for them again: their account is
erased as a shred now erases one (closed, no password, no address). Link tokens of closed
accounts are deleted; the others are sealed like the addresses.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.orm import Session

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = "vault_0001"

_INDEX = "identity.email"  # rampart.identity.emails.EMAIL_INDEX, fixed here as this revision's

users = sa.table(
    "identity_user",
    sa.column("id", sa.String),
    sa.column("email", sa.String),
    sa.column("status", sa.String),
    sa.column("password_hash", sa.String),
    sa.column("email_sealed", sa.LargeBinary),
    sa.column("email_index", sa.String),
)
tokens = sa.table(
    "identity_email_token",
    sa.column("id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("email", sa.String),
    sa.column("email_sealed", sa.LargeBinary),
    sa.column("email_index", sa.String),
)


def _vault(connection: sa.Connection) -> Any:
    from rampart.vault.setup import MIGRATION_VAULT_ATTRIBUTE

    vault = context.config.attributes.get(MIGRATION_VAULT_ATTRIBUTE)
    if vault is None:
        raise RuntimeError(
            "identity_0002 seals the stored email addresses and needs the vault: "
            "run `rampart db upgrade` with the production settings (RAMPART_VAULT__KEK)"
        )
    return vault


def _seal_existing(connection: sa.Connection) -> None:
    from rampart.vault.domain import Purpose, SealContext

    has_rows = connection.execute(sa.select(sa.func.count()).select_from(users)).scalar()
    has_tokens = connection.execute(sa.select(sa.func.count()).select_from(tokens)).scalar()
    if not has_rows and not has_tokens:
        return
    vault = _vault(connection)
    session = Session(bind=connection)
    erased: set[str] = set()
    for user_id, email, status in connection.execute(
        sa.select(users.c.id, users.c.email, users.c.status).order_by(users.c.id)
    ).all():
        if status == "closed" or vault.is_shredded(session, user_id):
            erased.add(user_id)
            connection.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(status="closed", password_hash=None, email_sealed=None, email_index=None)
            )
            continue
        where = SealContext("identity_user", "email_sealed", user_id)
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(
                email_sealed=vault.seal(
                    session, Purpose.PERSONAL_DATA, email, where, user_id=user_id
                ),
                email_index=vault.blind_index(session, _INDEX, email),
            )
        )
    for token_id, user_id, email in connection.execute(
        sa.select(tokens.c.id, tokens.c.user_id, tokens.c.email).order_by(tokens.c.id)
    ).all():
        if user_id in erased or vault.is_shredded(session, user_id):
            connection.execute(tokens.delete().where(tokens.c.id == token_id))
            continue
        where = SealContext("identity_email_token", "email_sealed", token_id)
        connection.execute(
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(
                email_sealed=vault.seal(
                    session, Purpose.PERSONAL_DATA, email, where, user_id=user_id
                ),
                email_index=vault.blind_index(session, _INDEX, email),
            )
        )
    session.flush()


def upgrade() -> None:
    with op.batch_alter_table("identity_user") as batch:
        batch.add_column(sa.Column("email_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("email_index", sa.String(64), nullable=True))
    with op.batch_alter_table("identity_email_token") as batch:
        batch.add_column(sa.Column("email_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("email_index", sa.String(64), nullable=True))
    _seal_existing(op.get_bind())
    with op.batch_alter_table("identity_user") as batch:
        batch.drop_constraint("uq_identity_user_email", type_="unique")
        batch.drop_column("email")
        batch.create_unique_constraint("uq_identity_user_email_index", ["email_index"])
    with op.batch_alter_table("identity_email_token") as batch:
        batch.drop_column("email")
        batch.alter_column("email_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column("email_index", existing_type=sa.String(64), nullable=False)


def _open_existing(connection: sa.Connection) -> None:
    from rampart.vault.domain import Purpose, SealContext, UnreadableError

    rows = connection.execute(
        sa.select(users.c.id, users.c.email_sealed).order_by(users.c.id)
    ).all()
    vault = _vault(connection) if any(sealed is not None for _, sealed in rows) else None
    session = Session(bind=connection)
    for user_id, sealed in rows:
        email = f"closed+{user_id}@closed.invalid"
        if sealed is not None and vault is not None:
            where = SealContext("identity_user", "email_sealed", user_id)
            try:
                email = vault.open_text(
                    session, Purpose.PERSONAL_DATA, sealed, where, user_id=user_id
                ).reveal()
            except UnreadableError:
                connection.execute(
                    users.update().where(users.c.id == user_id).values(status="closed")
                )
        connection.execute(users.update().where(users.c.id == user_id).values(email=email))
    # Link tokens are short-lived: they are not worth unsealing into clear text again.
    connection.execute(tokens.delete())


def downgrade() -> None:
    with op.batch_alter_table("identity_user") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
    with op.batch_alter_table("identity_email_token") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
    _open_existing(op.get_bind())
    with op.batch_alter_table("identity_user") as batch:
        batch.drop_constraint("uq_identity_user_email_index", type_="unique")
        batch.drop_column("email_index")
        batch.drop_column("email_sealed")
        batch.alter_column("email", existing_type=sa.String(254), nullable=False)
        batch.create_unique_constraint("uq_identity_user_email", ["email"])
    with op.batch_alter_table("identity_email_token") as batch:
        batch.drop_column("email_index")
        batch.drop_column("email_sealed")
        batch.alter_column("email", existing_type=sa.String(254), nullable=False)
