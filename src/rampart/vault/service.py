"""The vault: seal and open secrets at rest. This is the API other domains call.

How to use it (the signature is stable)::

    from rampart.vault import Purpose, SealContext

    ctx = SealContext(table="mfa_totp", column="secret", row_id=row.id)
    row.secret = container.vault.seal(uow, Purpose.MFA_SECRET, seed, ctx, user_id=user.id)
    ...
    seed = container.vault.open(uow, Purpose.MFA_SECRET, row.secret, ctx, user_id=user.id)
    totp = pyotp.TOTP(seed.reveal().decode())   # reveal only at the moment of use

    row.tax_id_index = container.vault.blind_index(uow, "identity.tax_id", normalised_tax_id)

- `seal(uow_or_session, purpose, plaintext: bytes | str | Secret, context, *, user_id=None)
  -> bytes` and `open(...) -> Secret[bytes]` (`open_text` -> `Secret[str]`). The first argument
  is the caller's `UnitOfWork` (or its SQLAlchemy session): data keys are stored wrapped in the
  database, created on first use in the caller's transaction, and cached unwrapped in memory.
- The `SealContext` (table, column, row id) is bound into the ciphertext: a value copied to another
  row or column does not open. Create the row id first (`new_id()`), then seal.
- Pass `user_id` for a person's data (tax ids, identity documents, bank details, names): it is
  then sealed under a per-user key that `shred_user` destroys, which makes that data unreadable
  everywhere, in backups too. Opening with a different `user_id` fails.
- Every failure to open is `UnreadableError` (or its subclass `ShreddedError`), never a hint of
  which check failed.
- Store ciphertexts in a `Sealed(Purpose.X)` column (`rampart.vault.columns`): it refuses
  plaintext, and it tells the re-encryption job and `rampart keys status` where ciphertexts live.
- `blind_index(uow, index_name, value)` gives a hex HMAC-SHA256 for equality lookups of an
  encrypted field. Normalise the value first (strip, case-fold) as the lookup will.

The vault is cut into parts that change for different reasons: `keys` (finding, creating and
caching keys), `sealing` (the API above), `rotation` (new versions, re-encryption, destruction,
KEK re-wrapping) and `shredding`. `VaultService` is the one object other domains hold; the vault's
own jobs and CLI use the parts (`vault.rotation`, `vault.shredding`) directly.
"""

from __future__ import annotations

from rampart.config import VaultSettings
from rampart.kernel.clock import Clock
from rampart.vault.columns import ColumnRegistry
from rampart.vault.keys import KeyRing
from rampart.vault.providers import KeyProvider
from rampart.vault.rotation import KeyRotation
from rampart.vault.sealing import EnvelopeSealer
from rampart.vault.shredding import Shredding


class VaultService(EnvelopeSealer):
    """Seal and open (from `EnvelopeSealer`), plus the vault's parts and their common calls."""

    def __init__(self, provider: KeyProvider, clock: Clock, settings: VaultSettings) -> None:
        keys = KeyRing(provider, clock, settings.key_cache_seconds)
        super().__init__(keys, settings)
        self._provider = provider
        self._cache = keys.cache
        self._columns = ColumnRegistry()
        self.rotation = KeyRotation(keys, self, self._columns, provider, clock, settings)
        self.shredding = Shredding(keys, clock)
        # The parts' own methods, by the vault's name.
        self.register = self._columns.register
        self.columns = self._columns.columns
        self.rotate = self.rotation.rotate
        self.current_version = self.rotation.current_version
        self.count_by_version = self.rotation.count_by_version
        self.destroy_version = self.rotation.destroy_version
        self.rewrap_all = self.rotation.rewrap_all
        self.status = self.rotation.status
        self.shred_user = self.shredding.shred_user
        self.apply_shreds = self.shredding.apply_shreds
        self.is_shredded = self.shredding.is_shredded

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    def forget_cached_keys(self) -> None:
        """Drop every unwrapped key from memory (tests, and after a KEK rotation)."""
        self._cache.evict(lambda _k, _v: True)
