"""The committed SBOM (`requirements/sbom.cdx.json`, CycloneDX 1.5) is the runtime lock file's
inventory, exactly: every pinned package with its version, purl and sha256 digests (ASVS 15.1.2).

Re-locking without regenerating it fails here; `python -m rampart.platform.sbom` fixes that.
"""

from __future__ import annotations

import json

import pytest

from rampart.platform.sbom import LOCK, SBOM, build, expected_sbom, read_lock


def test_the_committed_sbom_matches_the_runtime_lock_file() -> None:
    assert SBOM.read_text(encoding="utf-8") == expected_sbom(), (
        "requirements/sbom.cdx.json is out of date: run `python -m rampart.platform.sbom`"
    )


def test_every_locked_package_is_a_component_with_its_purl_and_hashes() -> None:
    document = json.loads(SBOM.read_text(encoding="utf-8"))
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    assert document["metadata"]["component"]["name"] == "rampart"
    components = {c["name"]: c for c in document["components"]}
    locked = read_lock(LOCK.read_text(encoding="utf-8"))
    assert len(locked) > 30
    assert set(components) == {p.name for p in locked}
    for package in locked:
        component = components[package.name]
        assert component["version"] == package.version
        assert component["purl"] == f"pkg:pypi/{package.name}@{package.version}"
        assert {h["content"] for h in component["hashes"] if h["alg"] == "SHA-256"} == set(
            package.sha256
        )
    (root,) = [d for d in document["dependencies"] if d["ref"] == "rampart@0.1.0"]
    assert len(root["dependsOn"]) == len(locked)


def test_a_changed_lock_file_changes_the_sbom() -> None:
    lock = LOCK.read_text(encoding="utf-8")
    bumped = lock.replace("alembic==", "alembic==9", 1)
    assert "alembic==9" in bumped
    assert build(bumped, "rampart", "0.1.0") != build(lock, "rampart", "0.1.0")
    assert build(lock, "rampart", "0.1.0") == build(lock, "rampart", "0.1.0")


def test_a_pin_without_a_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="without a hash"):
        read_lock("requests==2.32.0\n")
