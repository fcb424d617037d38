"""The software bill of materials: a CycloneDX 1.5 JSON document built from the hashed lock file.

`requirements/runtime.lock` already names every third-party package a server runs, at one
version, with the sha256 of every file the install may fetch; the SBOM restates that inventory in
the format scanners and auditors read (ASVS 15.1.2). It is generated, never edited:
`python -m rampart.platform.sbom` rewrites `requirements/sbom.cdx.json`, and a test fails when
the committed document no longer matches the lock file.

The output is reproducible (same lock, same bytes): the serial number is derived from the lock
file's digest, and there is no generation timestamp, so a re-run that changes nothing commits
nothing. The document is built with `cyclonedx-python-lib`, the CycloneDX project's own library
(locked in `requirements/dev.lock` as a dependency of pip-audit): this is a build tool, run from
a development install, not something a server imports.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentScope, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "requirements" / "runtime.lock"
SBOM = ROOT / "requirements" / "sbom.cdx.json"
PYPROJECT = ROOT / "pyproject.toml"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")
#: A fixed namespace, so the same lock file always yields the same serial number.
_SERIAL_NAMESPACE = uuid.UUID("7c1c0a52-6a36-4f4b-9a51-4a7c0a5e2b11")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    sha256: tuple[str, ...]


def read_lock(text: str) -> list[LockedPackage]:
    """Every `name==version` pin of a `--generate-hashes` lock file, with its sha256 digests."""
    packages: list[LockedPackage] = []
    name = version = None
    digests: list[str] = []

    def flush() -> None:
        if name is not None and version is not None:
            if not digests:
                raise ValueError(f"{name}=={version} is pinned without a hash")
            packages.append(LockedPackage(name, version, tuple(sorted(digests))))

    for line in text.splitlines():
        pin = _PIN.match(line)
        if pin:
            flush()
            name = str(canonicalize_name(pin["name"]))
            version = pin["version"]
            digests = []
        digests.extend(m["digest"] for m in _HASH.finditer(line))
    flush()
    return sorted(packages, key=lambda p: p.name)


def build(lock_text: str, project_name: str, project_version: str) -> str:
    """The CycloneDX 1.5 JSON text for `lock_text`, for the application `project_name`."""
    bom = Bom()
    digest = hashlib.sha256(lock_text.encode()).hexdigest()
    bom.serial_number = uuid.uuid5(_SERIAL_NAMESPACE, digest)
    bom.metadata.timestamp = None  # type: ignore[assignment]
    root = Component(
        name=project_name,
        version=project_version,
        type=ComponentType.APPLICATION,
        bom_ref=f"{project_name}@{project_version}",
    )
    bom.metadata.component = root
    for package in read_lock(lock_text):
        purl = PackageURL(type="pypi", name=package.name, version=package.version)
        component = Component(
            name=package.name,
            version=package.version,
            type=ComponentType.LIBRARY,
            scope=ComponentScope.REQUIRED,
            purl=purl,
            bom_ref=purl.to_string(),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=d) for d in package.sha256],
            external_references=[
                ExternalReference(
                    type=ExternalReferenceType.DISTRIBUTION,
                    url=XsUri(f"https://pypi.org/project/{package.name}/{package.version}/"),
                )
            ],
        )
        bom.components.add(component)
        bom.register_dependency(root, [component])
    text = JsonV1Dot5(bom).output_as_string(indent=2)
    # Re-dump with sorted keys: the library's key order is an implementation detail.
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def expected_sbom() -> str:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return build(LOCK.read_text(encoding="utf-8"), project["name"], project["version"])


def main() -> int:
    SBOM.write_text(expected_sbom(), encoding="utf-8")
    print(f"wrote {SBOM.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
