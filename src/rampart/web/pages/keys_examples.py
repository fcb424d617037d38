"""Signing examples shown beside a new API key: `rampart.client`, plain Python and Node.js.

Each signs as `rampart.apikeys.signatures` verifies (RFC 9421): `@method` and `@target-uri`, plus
`content-digest` (RFC 9530, sha-256) and `content-type` when there is a body; the parameters
`created`, `keyid`, a fresh `nonce` and `alg`; the label `sig1`. The secret itself is never written
into an example: it is read from `RAMPART_API_SECRET` (hmac-sha256) or a PEM file (ed25519), so a
copied example can be kept, and shared, without the secret in it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    title: str
    language: str
    code: str


def _client(base_url: str, key_id: str, algorithm: str) -> str:
    credential = (
        'secret=os.environ["RAMPART_API_SECRET"]'
        if algorithm == "hmac-sha256"
        else 'private_key=open("rampart-key.pem", "rb").read()'
    )
    return f"""import os

from rampart.client import RampartClient

with RampartClient(
    "{base_url}",
    key_id="{key_id}",
    {credential},
) as client:
    print(client.get("/api/v1/apikeys/whoami").json())
"""


def _plain_python(base_url: str, key_id: str, algorithm: str) -> str:
    if algorithm == "hmac-sha256":
        key_setup = 'SECRET = os.environ["RAMPART_API_SECRET"].encode("ascii")\n'
        sign = "hmac.new(SECRET, base.encode(), hashlib.sha256).digest()"
        imports = ""
    else:
        key_setup = (
            'with open("rampart-key.pem", "rb") as pem:\n'
            "    PRIVATE_KEY = load_pem_private_key(pem.read(), password=None)\n"
        )
        sign = "PRIVATE_KEY.sign(base.encode())"
        imports = (
            "\nfrom cryptography.hazmat.primitives.serialization import load_pem_private_key\n"
        )
    return f"""import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.parse
import urllib.request
{imports}
BASE_URL = "{base_url}"  # as the server is reached: no default port (:443) in it
KEY_ID = "{key_id}"
{key_setup}

def signed(method, path, body=None):
    url = BASE_URL + path
    parts = urllib.parse.urlsplit(url)
    query = f"?{{parts.query}}" if parts.query else ""
    values = {{
        "@method": method,
        "@target-uri": f"{{parts.scheme}}://{{parts.netloc.lower()}}{{parts.path}}{{query}}",
    }}
    headers, data = {{}}, None
    if body is not None:
        data = json.dumps(body).encode()
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        headers.update({{"Content-Type": "application/json", "Content-Digest": digest}})
        values.update({{"content-digest": digest, "content-type": "application/json"}})
    params = (
        "(" + " ".join(f'"{{name}}"' for name in values) + ")"
        + f';created={{int(time.time())}};keyid="{{KEY_ID}}"'
        + f';nonce="{{secrets.token_urlsafe(24)}}";alg="{algorithm}"'
    )
    lines = [f'"{{name}}": {{value}}' for name, value in values.items()]
    base = "\\n".join([*lines, f'"@signature-params": {{params}}'])
    signature = base64.b64encode({sign}).decode()
    headers.update({{"Signature-Input": f"sig1={{params}}", "Signature": f"sig1=:{{signature}}:"}})
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


print(signed("GET", "/api/v1/apikeys/whoami"))
"""


def _node(base_url: str, key_id: str, algorithm: str) -> str:
    if algorithm == "hmac-sha256":
        key_setup = "const SECRET = process.env.RAMPART_API_SECRET;"
        sign = 'crypto.createHmac("sha256", SECRET).update(base).digest("base64")'
    else:
        key_setup = 'const PRIVATE_KEY = fs.readFileSync("rampart-key.pem");'
        sign = 'crypto.sign(null, Buffer.from(base), PRIVATE_KEY).toString("base64")'
    return f"""// Node.js 18 or later: built-in crypto and fetch, no packages.
const crypto = require("node:crypto");
const fs = require("node:fs");

const BASE_URL = "{base_url}";
const KEY_ID = "{key_id}";
{key_setup}

async function signed(method, path, body) {{
  const url = new URL(path, BASE_URL);
  const values = [
    ["@method", method],
    ["@target-uri", `${{url.protocol}}//${{url.host}}${{url.pathname}}${{url.search}}`],
  ];
  const headers = {{}};
  let data;
  if (body !== undefined) {{
    data = Buffer.from(JSON.stringify(body));
    const digest = `sha-256=:${{crypto.createHash("sha256").update(data).digest("base64")}}:`;
    headers["Content-Type"] = "application/json";
    headers["Content-Digest"] = digest;
    values.push(["content-digest", digest], ["content-type", "application/json"]);
  }}
  const nonce = crypto.randomBytes(18).toString("base64url");
  const params =
    `(${{values.map(([name]) => `"${{name}}"`).join(" ")}})` +
    `;created=${{Math.floor(Date.now() / 1000)}};keyid="${{KEY_ID}}"` +
    `;nonce="${{nonce}}";alg="{algorithm}"`;
  const base = [
    ...values.map(([name, value]) => `"${{name}}": ${{value}}`),
    `"@signature-params": ${{params}}`,
  ].join("\\n");
  const signature = {sign};
  headers["Signature-Input"] = `sig1=${{params}}`;
  headers["Signature"] = `sig1=:${{signature}}:`;
  const response = await fetch(url, {{ method, headers, body: data }});
  return response.json();
}}

signed("GET", "/api/v1/apikeys/whoami").then((answer) => console.log(answer));
"""


def signing_examples(base_url: str, key_id: str, algorithm: str) -> list[Example]:
    """The examples for one key, each complete and runnable as it stands."""
    base = base_url.rstrip("/")
    return [
        Example(
            "example-client",
            "Python with rampart.client",
            "python",
            _client(base, key_id, algorithm),
        ),
        Example(
            "example-python",
            "Python, standard library only",
            "python",
            _plain_python(base, key_id, algorithm),
        ),
        Example(
            "example-node", "JavaScript (Node.js)", "javascript", _node(base, key_id, algorithm)
        ),
    ]


__all__ = ["Example", "signing_examples"]
