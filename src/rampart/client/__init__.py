"""`rampart.client`: a small synchronous client for bots, signing every request (RFC 9421).

    from rampart.client import RampartClient

    client = RampartClient("https://api.example.com", key_id="...", secret="rmp_live_...")
    client.get("/api/v1/apikeys/whoami").json()

It imports nothing of the server: bots install it without the platform.
"""

from rampart.client.client import RampartClient, RampartError
from rampart.client.signing import Ed25519Signer, HmacSigner, Signer, sign_request

__all__ = ["Ed25519Signer", "HmacSigner", "RampartClient", "RampartError", "Signer", "sign_request"]
