"""`Sealed`: the column type for vault ciphertexts.

Why a column type that only checks, rather than one that encrypts: the associated data binds each
ciphertext to its row id, and a SQLAlchemy type sees a value without its row (bind parameters
carry no row, and a bulk UPDATE has no instance at all). Encryption therefore happens in the
service layer, with an explicit `vault.seal(uow, purpose, value, SealContext(table, column, id))`
call. The column type's jobs are the two things a type can do reliably:

- refuse plaintext: binding anything that is not a vault ciphertext of the column's purpose
  raises, so forgetting to seal fails loudly instead of storing a secret in clear;
- declare where ciphertexts live: the vault finds every `Sealed` column in `Base.metadata` and
  the re-encryption job, `rampart keys status` and key destruction cover it with no extra wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, TypeDecorator
from sqlalchemy.engine import Dialect

from rampart.platform.base import Base
from rampart.vault.domain import Purpose, UnreadableError, parse_header


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    """Where ciphertexts of one purpose live, so that rotation can find and re-encrypt them."""

    table: str
    column: str
    purpose: Purpose
    id_column: str = "id"


class PlaintextRefusedError(TypeError):
    """Something that is not a sealed value of this column's purpose was about to be stored."""


class Sealed(TypeDecorator[bytes]):
    """A vault ciphertext of one purpose (binary). Plaintext is refused at bind time."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: Purpose, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.purpose = Purpose(purpose)

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise PlaintextRefusedError("a Sealed column stores vault ciphertexts (bytes) only")
        try:
            header = parse_header(bytes(value))
        except UnreadableError:
            raise PlaintextRefusedError("refusing to store an unsealed value") from None
        if header.purpose != self.purpose:
            raise PlaintextRefusedError("the value was sealed for another purpose")
        return bytes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)


def discover_sealed_columns() -> list[EncryptedColumn]:
    """Every `Sealed` column of the mapped tables."""
    found = []
    for table in Base.metadata.tables.values():
        primary = list(table.primary_key.columns)
        if len(primary) != 1:
            continue
        for col in table.columns:
            if isinstance(col.type, Sealed):
                found.append(
                    EncryptedColumn(table.name, col.name, col.type.purpose, primary[0].name)
                )
    return found


class ColumnRegistry:
    """The columns that hold ciphertexts: every `Sealed` column, and those declared by hand."""

    def __init__(self) -> None:
        self._declared: dict[tuple[str, str], EncryptedColumn] = {}

    def register(self, column: EncryptedColumn) -> None:
        """Declare a column holding ciphertexts (`Sealed` columns of mapped tables are found
        automatically; use this for tables defined outside `Base.metadata`)."""
        self._declared[(column.table, column.column)] = column

    def columns(self, purpose: Purpose | None = None) -> list[EncryptedColumn]:
        found = dict(self._declared)
        for item in discover_sealed_columns():
            found.setdefault((item.table, item.column), item)
        return sorted(
            (c for c in found.values() if purpose is None or c.purpose == purpose),
            key=lambda c: (c.table, c.column),
        )
