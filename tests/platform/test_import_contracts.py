"""The import contracts hold on the real tree, and catch a domain that reaches for the bootstrap.

`rampart.bootstrap` holds the container of every service; a domain that imports it (even only
for a type, under `TYPE_CHECKING`) is back to looking services up instead of being given them,
and closes a cycle the contracts would not see (docs/decisions/0001-services-not-container.md).
The contracts count type-checking imports, so adding one to a copy of the tree must fail
`lint-imports`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "rampart"
NO_BOOTSTRAP = "No domain imports rampart.bootstrap, even for a type"

VIOLATION = '''"""A domain module that names the container "only for a type"."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rampart.bootstrap import Container


def risk_of(container: Container) -> object:
    return container.risk
'''


def _lint(src: Path, config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the `rampart` package found under `src`, in a fresh interpreter (the
    package is analysed from its files on the path, never from this process's imports)."""
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(config)],
        cwd=cwd,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree and its contracts, to break on purpose."""
    base = tmp_path_factory.mktemp("contracts")
    shutil.copytree(
        SRC,
        base / "src" / "rampart",
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "data", "*.db"),
    )
    shutil.copy(ROOT / "pyproject.toml", base / "pyproject.toml")
    return base


def test_the_contracts_count_type_checking_imports() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["exclude_type_checking_imports"] is False
    names = [c["name"] for c in config["contracts"]]
    assert NO_BOOTSTRAP in names


def test_the_real_tree_keeps_every_contract(tree_copy: Path) -> None:
    result = _lint(tree_copy / "src", tree_copy / "pyproject.toml", tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("domain", ["risk", "identity.mfa", "platform.http"])
def test_a_domain_importing_the_bootstrap_for_a_type_breaks_the_contracts(
    tree_copy: Path, tmp_path: Path, domain: str
) -> None:
    broken = tmp_path / "src"
    shutil.copytree(tree_copy / "src", broken)
    module = broken / "rampart" / Path(*domain.split(".")) / "reaches_the_container.py"
    module.write_text(VIOLATION)

    result = _lint(broken, tree_copy / "pyproject.toml", tmp_path)

    assert result.returncode != 0, result.stdout
    assert f"rampart.{domain}.reaches_the_container -> rampart.bootstrap" in result.stdout
    assert f"{NO_BOOTSTRAP} BROKEN" in result.stdout


def test_excluding_type_checking_imports_would_hide_it(tree_copy: Path, tmp_path: Path) -> None:
    """Why the setting matters: with type-checking imports excluded (as before), the same
    violation passes every contract."""
    broken = tmp_path / "src"
    shutil.copytree(tree_copy / "src", broken)
    (broken / "rampart" / "risk" / "reaches_the_container.py").write_text(VIOLATION)
    config = tmp_path / "pyproject.toml"
    settings = (
        (tree_copy / "pyproject.toml")
        .read_text()
        .replace("exclude_type_checking_imports = false", "exclude_type_checking_imports = true")
    )
    # The pure-core contract ignores two annotation-only imports; with type-checking imports
    # excluded they are not in the graph, and an ignore that matches nothing is an error.
    settings = re.sub(r"(?m)^ignore_imports = .*\n", "", settings)
    config.write_text(settings)

    result = _lint(broken, config, tmp_path)

    assert result.returncode == 0, result.stdout
