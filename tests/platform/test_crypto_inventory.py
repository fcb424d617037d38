"""The cryptographic inventory in docs/security/keys.md names every module that uses cryptography.

A discovery check (ASVS 11.1.3): a new `import hmac` or `os.urandom` in a module the inventory does
not list fails here, so the inventory cannot fall behind the code; and Python's `random`, which is
not a CSPRNG, may appear only where the inventory says its use is not secret.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "docs" / "security" / "keys.md"
CRYPTO_USE = re.compile(
    r"^\s*(?:import|from)\s+(?:cryptography|hashlib|hmac|secrets|argon2|jwt|webauthn|bcrypt)\b"
    r"|\bos\.urandom\b",
    re.MULTILINE,
)
RANDOM_USE = re.compile(r"^\s*(?:import\s+random\b|from\s+random\s+import)", re.MULTILINE)
LISTED = re.compile(r"^\| `(src/rampart/[^`]+\.py)` \| (.+) \|$", re.MULTILINE)


def _modules(pattern: re.Pattern[str]) -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "rampart").rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    }


def _listed() -> dict[str, str]:
    return dict(LISTED.findall(INVENTORY.read_text(encoding="utf-8")))


def test_every_module_that_uses_cryptography_is_in_the_inventory() -> None:
    missing = sorted((_modules(CRYPTO_USE) | _modules(RANDOM_USE)) - set(_listed()))
    assert not missing, f"add these to docs/security/keys.md: {missing}"


def test_the_inventory_lists_no_module_that_no_longer_uses_any() -> None:
    stale = sorted(set(_listed()) - _modules(CRYPTO_USE) - _modules(RANDOM_USE))
    assert not stale, f"remove these from docs/security/keys.md: {stale}"


def test_python_random_is_only_where_the_inventory_calls_its_use_not_secret() -> None:
    listed = _listed()
    unmarked = sorted(m for m in _modules(RANDOM_USE) if "non-secret use" not in listed.get(m, ""))
    assert not unmarked, f"`random` is not a CSPRNG; use `secrets` in {unmarked}"
