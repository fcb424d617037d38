"""Checkpoints as C2SP signed notes (pure logic).

A checkpoint (origin, tree size, root hash) is a C2SP `tlog-checkpoint` in a C2SP `signed-note`,
so tools built for transparency logs read it:

    <origin>\\n<size>\\n<base64 root hash>\\n[extension lines]\\n\\n— <key name> <base64 sig>\\n

with the Ed25519 signature covering the note text (everything before the blank line) and carried
after a 4-byte key id: the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_ALGORITHM = 0x01
SIGNATURE_DASH = "\u2014"
_KEY_NAME = re.compile(r"^[^\s+\u2014]{1,200}$")


class NoteError(ValueError):
    """A note or checkpoint that is malformed."""


def valid_key_name(name: str) -> bool:
    return bool(_KEY_NAME.match(name)) and name.isprintable()


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id for an Ed25519 key: 4 bytes of SHA-256(name \\n 0x01 key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALGORITHM]) + public_key).digest()[
        :4
    ]


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string `<name>+<hex key id>+<base64(0x01 || public key)>`."""
    encoded = base64.b64encode(bytes([ED25519_ALGORITHM]) + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """(name, public key) from a verifier key string; NoteError when it is not valid."""
    # The base64 key may itself contain '+': only the first two are separators.
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not valid_key_name(parts[0]):
        raise NoteError("not a verifier key")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("not a verifier key") from exc
    if len(raw) != 33 or raw[0] != ED25519_ALGORITHM:
        raise NoteError("not an Ed25519 verifier key")
    public_key = raw[1:]
    if key_id(name, public_key).hex() != hex_id.lower():
        raise NoteError("verifier key id does not match the key")
    return name, public_key


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: the log's origin, its size and root hash, optional extensions."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @property
    def timestamp_ns(self) -> int | None:
        for line in self.extensions:
            if line.startswith(TIMESTAMP_EXTENSION):
                value = line[len(TIMESTAMP_EXTENSION) :]
                if value.isdigit():
                    return int(value)
        return None


TIMESTAMP_EXTENSION = "timestamp "


def parse_checkpoint(text: str) -> Checkpoint:
    if not text.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text, *extensions = lines
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise NoteError("malformed checkpoint origin or size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("malformed checkpoint root hash") from exc
    if len(root) != 32 or any(not line for line in extensions):
        raise NoteError("malformed checkpoint root hash or extension")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        lines = [
            f"{SIGNATURE_DASH} {s.name} {base64.b64encode(s.key_id + s.signature).decode()}\n"
            for s in self.signatures
        ]
        return self.text + "\n" + "".join(lines)


def parse_note(note: str) -> SignedNote:
    """Split a signed note into its text and signature lines (not checking any signature)."""
    if len(note) > 1_000_000:
        raise NoteError("note too large")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("a signed note has its text, a blank line, then signature lines")
    text, block = note[: split + 1], note[split + 2 :]
    signatures = []
    for line in block[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != SIGNATURE_DASH or not valid_key_name(parts[1]):
            raise NoteError("malformed signature line")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise NoteError("malformed signature") from exc
        if len(raw) < 5:
            raise NoteError("malformed signature")
        signatures.append(NoteSignature(parts[1], raw[:4], raw[4:]))
    if not signatures:
        raise NoteError("a signed note carries at least one signature")
    return SignedNote(text, tuple(signatures))


class NoteSigner:
    """Signs note text with an Ed25519 key under a key name (the log's origin)."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not valid_key_name(name):
            raise ValueError("key names are printable, without spaces or '+'")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, self.public_key)

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.name, self.public_key)

    def renamed(self, name: str) -> NoteSigner:
        """The same key under another name (a log's recorded origin)."""
        signer = NoteSigner.__new__(NoteSigner)
        if not valid_key_name(name):
            raise ValueError("key names are printable, without spaces or '+'")
        signer.name, signer._key, signer.public_key = name, self._key, self.public_key
        signer.key_id = key_id(name, self.public_key)
        return signer

    def sign(self, text: str) -> NoteSignature:
        return NoteSignature(self.name, self.key_id, self._key.sign(text.encode()))

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        text = checkpoint.text()
        return SignedNote(text, (self.sign(text),)).render()


def verify_note(note: str, name: str, public_key: bytes) -> SignedNote | None:
    """The note when it carries a valid signature by (name, public key); None otherwise."""
    try:
        parsed = parse_note(note)
        kid = key_id(name, public_key)
        verifier = Ed25519PublicKey.from_public_bytes(public_key)
        for signature in parsed.signatures:
            if signature.name == name and signature.key_id == kid:
                try:
                    verifier.verify(signature.signature, parsed.text.encode())
                    return parsed
                except InvalidSignature:
                    continue
        return None
    except (NoteError, ValueError):
        return None


def verify_checkpoint(
    note: str, keys: list[tuple[str, bytes]], origin: str | None = None
) -> Checkpoint | None:
    """The checkpoint of `note` when one of `keys` signed it (and its origin is `origin`)."""
    for name, public_key in keys:
        parsed = verify_note(note, name, public_key)
        if parsed is None:
            continue
        try:
            checkpoint = parse_checkpoint(parsed.text)
        except NoteError:
            return None
        if origin is not None and checkpoint.origin != origin:
            return None
        return checkpoint
    return None
