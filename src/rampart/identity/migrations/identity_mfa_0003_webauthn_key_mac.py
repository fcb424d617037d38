"""identity_mfa: a keyed MAC beside every stored WebAuthn public key (ASVS 6.7.1)

Revision ID: identity_mfa_0003

The MAC is the vault's blind index (HMAC-SHA256 under a key wrapped by the KEK) over the user,
the credential id and the public key; an assertion whose stored key fails it is refused. Rows
registered before this revision are MACed here, in the migration's transaction, which needs the
vault: `rampart db upgrade` hands it in (see `identity_0002`). A database without any registered
key needs nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.orm import Session

revision = "identity_mfa_0003"
down_revision = "identity_mfa_0002"
branch_labels = None
depends_on = "vault_0001"

#: `rampart.identity.mfa.domain.WEBAUTHN_KEY_MAC_INDEX`, fixed here as this revision's.
_INDEX = "mfa-webauthn-key"

credentials = sa.table(
    "mfa_webauthn_credential",
    sa.column("id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("credential_id", sa.String),
    sa.column("public_key", sa.LargeBinary),
    sa.column("key_mac", sa.String),
)


def _vault() -> Any:
    from rampart.vault.setup import MIGRATION_VAULT_ATTRIBUTE

    vault = context.config.attributes.get(MIGRATION_VAULT_ATTRIBUTE)
    if vault is None:
        raise RuntimeError(
            "identity_mfa_0003 MACs the stored WebAuthn keys and needs the vault: "
            "run `rampart db upgrade` with the production settings (RAMPART_VAULT__KEK)"
        )
    return vault


def upgrade() -> None:
    op.add_column("mfa_webauthn_credential", sa.Column("key_mac", sa.String(64), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            credentials.c.id,
            credentials.c.user_id,
            credentials.c.credential_id,
            credentials.c.public_key,
        ).order_by(credentials.c.id)
    ).all()
    if not rows:
        return
    vault = _vault()
    session = Session(bind=connection)
    for row_id, user_id, credential_id, public_key in rows:
        mac = vault.blind_index(
            session, _INDEX, f"{user_id}\x00{credential_id}\x00{bytes(public_key).hex()}"
        )
        connection.execute(
            credentials.update().where(credentials.c.id == row_id).values(key_mac=mac)
        )
    # The blind-index key may have been created just now: its row goes in with the MACs.
    session.flush()


def downgrade() -> None:
    op.drop_column("mfa_webauthn_credential", "key_mac")
