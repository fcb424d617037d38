"""The HTTP client: httpx underneath, every request signed."""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rampart.client.signing import Ed25519Signer, HmacSigner, Signer, sign_request


class RampartError(Exception):
    """A problem+json answer: `code` is the part after `urn:rampart:problem:`."""

    def __init__(self, status: int, code: str, title: str, detail: str | None, body: Any) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.body = body


class RampartClient:
    """Signs each request with an API key: `secret=` (hmac-sha256) or `private_key=` (ed25519).

    `http_client` may be any `httpx.Client` (a test client, one with a proxy or custom TLS).
    """

    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        secret: str | None = None,
        private_key: Ed25519PrivateKey | bytes | None = None,
        timeout: float = 10.0,
        http_client: httpx.Client | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if (secret is None) == (private_key is None):
            raise ValueError("give exactly one of secret= (hmac-sha256) or private_key= (ed25519)")
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self._signer: Signer = (
            HmacSigner(secret) if secret is not None else Ed25519Signer(private_key)  # type: ignore[arg-type]
        )
        self._http = http_client or httpx.Client(timeout=timeout)
        self._owns_http = http_client is None
        self._now = now

    def __enter__(self) -> RampartClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = httpx.URL(self.base_url + "/" + path.lstrip("/"))
        if params:
            url = url.copy_merge_params(params)
        return str(url)

    def signed_headers(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Headers that sign one request (also for a WebSocket handshake: method GET, ws(s) URL)."""
        headers = dict(headers or {})
        headers.update(
            sign_request(
                method, url, headers, body, key_id=self.key_id, signer=self._signer, now=self._now
            )
        )
        return headers

    def websocket_handshake(self, path: str) -> tuple[str, dict[str, str]]:
        """(ws URL, headers) for opening a WebSocket with a signed handshake."""
        url = self.url(path)
        ws_url = "wss" + url[5:] if url.startswith("https") else "ws" + url[4:]
        return ws_url, self.signed_headers("GET", ws_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_problem: bool = False,
    ) -> httpx.Response:
        url = self.url(path, params)
        body = b""
        base_headers = {"Accept": "application/json", **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":"), default=str).encode("utf-8")
            base_headers["Content-Type"] = "application/json"
        signed = self.signed_headers(method, url, body, base_headers)
        response = self._http.request(method, url, content=body or None, headers=signed)
        if raise_for_problem and response.status_code >= 400:
            raise _problem(response)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


def _problem(response: httpx.Response) -> RampartError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("type", "")).removeprefix("urn:rampart:problem:")
        return RampartError(
            response.status_code, code, str(body.get("title", "")), body.get("detail"), body
        )
    return RampartError(response.status_code, "http-error", response.reason_phrase, None, body)
