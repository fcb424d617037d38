"""The WebAuthn JSON a browser sends (`PublicKeyCredential.toJSON()`), as strict types.

A credential used to arrive as `dict[str, Any]` and went, unread, to orjson (to measure it) and
to the WebAuthn library: an integer past 64 bits or a lone surrogate anywhere in it made orjson
raise, and the request answered 500 to anyone, signed in or not (the second step of signing in
takes one). Typed, every member is what the ceremony needs and nothing else reaches the library:
base64url text of bounded length, the credential type, known transports. Members a browser adds
that the ceremony does not read are dropped, not refused, so a newer browser still works.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: base64url without padding (some libraries pad: tolerated), bounded: the whole credential JSON
#: is a few KiB at most (`MAX_CREDENTIAL_JSON`).
Base64Url = Annotated[
    str, StringConstraints(min_length=1, max_length=8192, pattern=r"^[A-Za-z0-9_-]+={0,2}$")
]
Transport = Literal["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]


class _Json(BaseModel):
    # Unknown members are dropped: they never reach the library or a serialiser.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AttestationResponse(_Json):
    clientDataJSON: Base64Url
    attestationObject: Base64Url
    transports: list[Transport] | None = Field(default=None, max_length=8)


class AssertionResponse(_Json):
    clientDataJSON: Base64Url
    authenticatorData: Base64Url
    signature: Base64Url
    userHandle: Base64Url | None = None


class _Credential(_Json):
    id: Base64Url
    rawId: Base64Url
    type: Literal["public-key"] = "public-key"
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None

    def as_json(self) -> dict[str, Any]:
        """The credential as the WebAuthn library reads it (only the members set)."""
        return self.model_dump(exclude_none=True)


class RegistrationCredential(_Credential):
    """What `navigator.credentials.create()` resolves to, as JSON."""

    response: AttestationResponse


class AssertionCredential(_Credential):
    """What `navigator.credentials.get()` resolves to, as JSON."""

    response: AssertionResponse
