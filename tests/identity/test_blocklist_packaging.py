"""The common-password blocklist ships inside the package: an installed wheel refuses
"password123" without the source tree, and an operator can point the service at another list."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rampart.config import Settings
from rampart.identity.domain import WeakPasswordError
from rampart.identity.service import BlocklistMissingError, load_password_policy

#: Builds and installs a wheel.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MEMBER = "rampart/identity/data/common-passwords.txt"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("rampart-*.whl")
    return built


def test_the_wheel_carries_the_list_and_its_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert MEMBER in names
        assert "rampart/identity/data/LICENSE-zxcvbn.txt" in names
        assert "rampart/identity/data/README.md" in names
        assert len(archive.read(MEMBER).splitlines()) > 40_000


def test_an_installed_wheel_loads_it_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    probe = (
        "import rampart.identity.service as s\n"
        "from rampart.config import Settings\n"
        "policy = s.load_password_policy(Settings())\n"
        "print(s.__file__)\n"
        "print(s.shipped_blocklist())\n"
        "print(bool(policy.problems('password123')), len(policy.blocklist))\n"
    )
    # Run from an empty directory with the unpacked wheel first on the path: no `data/` beside it.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n{probe}"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    module_file, resource, verdict = result.stdout.strip().splitlines()
    assert module_file.startswith(str(site))
    assert resource.startswith(str(site))
    refused, size = verdict.split()
    assert refused == "True"
    assert int(size) > 40_000


def test_the_configured_path_overrides_the_shipped_list(tmp_path: Path) -> None:
    custom = tmp_path / "ours.txt"
    custom.write_text("Rampart-Sesame-2024\n", encoding="utf-8")
    settings = Settings(identity={"password_blocklist_path": custom})  # type: ignore[arg-type]
    policy = load_password_policy(settings)
    assert policy.blocklist == frozenset({"rampart-sesame-2024"})
    with pytest.raises(WeakPasswordError):
        policy.check("rampart-SESAME-2024", "ann@example.com")
    # The shipped list is not consulted when another is configured.
    assert policy.problems("password123") == []


def test_a_configured_path_that_is_missing_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(
        identity={"password_blocklist_path": tmp_path / "gone.txt"}  # type: ignore[arg-type]
    )
    with pytest.raises(BlocklistMissingError):
        load_password_policy(settings)
