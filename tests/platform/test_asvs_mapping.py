"""docs/security/asvs.md stays true: every test and code path a row names exists, and the summary
it states is no better than its rows.

The mapping is what an assessor reads first. A row that says "tested" by a test that was renamed
or deleted, or "met" by a module that moved, is worse than a gap: it is a claim nobody checks. So
each named test must be a `def test_…` in the named file (with its parametrised id, if one is
given, declared in that file), each code path must exist (and its `::symbol` be defined there),
and the figures in the summary line are recomputed from the rows and must not exceed them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "docs" / "security" / "asvs.md"
STATUSES = frozenset({"met", "partial", "not met", "N/A"})
#: The chapters whose level 3 rows are in scope (authentication, sessions, cryptography, logging).
L3_CHAPTERS = frozenset({"6", "7", "11", "16"})
#: The ASVS 5.0.0 rows in scope: every L1 and L2 requirement (253) and the L3 rows of the four
#: chapters above (24).
EXPECTED_ROWS = 277
ROW = re.compile(r"^\| (\d+)\.(\d+)\.(\d+) \|")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
SUMMARY = re.compile(
    r"At L2, (?P<l2_met>\d+(?:\.\d)?) % of applicable requirements are met .*?"
    r"(?P<l2_tested>\d+(?:\.\d)?) % are met and tested.*?"
    r"L3 rows of V6, V7, V11 and V16, (?P<l3_met>\d+(?:\.\d)?) % are met",
    re.DOTALL,
)


@dataclass(frozen=True)
class Row:
    id: str
    chapter: str
    level: int
    status: str
    code: tuple[str, ...]
    tests: tuple[str, ...]


def _refs(cell: str) -> tuple[str, ...]:
    cell = cell.strip()
    if cell in ("", "—"):
        return ()
    return tuple(part.strip().strip("`") for part in cell.split("; "))


def parse(text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = ROW.match(line)
        if not match:
            continue
        cells = [cell.strip() for cell in CELL_SPLIT.split(line.strip())[1:-1]]
        assert len(cells) == 7, f"line {number}: {len(cells)} cells, expected 7"
        rid, level, _text, status, code, tests, _notes = cells
        assert status in STATUSES, f"{rid}: unknown status {status!r}"
        rows.append(Row(rid, match.group(1), int(level), status, _refs(code), _refs(tests)))
    return rows


@pytest.fixture(scope="module")
def document() -> str:
    return MAPPING.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(document: str) -> list[Row]:
    return parse(document)


def _defines(source: str, symbol: str) -> bool:
    name = re.escape(symbol)
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^\s*{name}\s*[:=]"
    return re.search(pattern, source, re.MULTILINE) is not None


def test_every_requirement_in_scope_is_one_row(rows: list[Row]) -> None:
    ids = [row.id for row in rows]
    assert len(ids) == len(set(ids)), "a requirement appears twice"
    assert len(rows) == EXPECTED_ROWS
    beyond_scope = [r.id for r in rows if r.level == 3 and r.chapter not in L3_CHAPTERS]
    assert not beyond_scope


def test_every_named_test_exists(rows: list[Row]) -> None:
    missing = []
    for row in rows:
        for ref in row.tests:
            path, _, name = ref.partition("::")
            name, _, param = name.partition("[")
            file = ROOT / path
            if not path.startswith("tests/") or not file.is_file():
                missing.append(f"{row.id}: no test file {path}")
                continue
            source = file.read_text(encoding="utf-8")
            if not re.search(rf"^(?:async\s+)?def {re.escape(name)}\(", source, re.MULTILINE):
                missing.append(f"{row.id}: no test {name} in {path}")
            elif param and f'"{param.rstrip("]")}"' not in source:
                missing.append(f"{row.id}: {path} declares no parameter id {param.rstrip(']')}")
    assert not missing, "\n".join(missing)


def test_every_named_code_path_exists(rows: list[Row]) -> None:
    missing = []
    for row in rows:
        for ref in row.code:
            path, _, symbol = ref.partition("::")
            file = ROOT / path
            if not file.is_file():
                missing.append(f"{row.id}: no file {path}")
            elif symbol and not _defines(file.read_text(encoding="utf-8"), symbol):
                missing.append(f"{row.id}: {path} defines no {symbol}")
    assert not missing, "\n".join(missing)


def test_only_rows_that_hold_in_part_name_tests(rows: list[Row]) -> None:
    """A test cannot assert a requirement that is not met or does not apply."""
    wrong = [r.id for r in rows if r.status in ("not met", "N/A") and r.tests]
    assert not wrong


def figures(rows: list[Row]) -> dict[str, float]:
    def share(part: int, whole: int) -> float:
        return 100.0 * part / whole if whole else 0.0

    l2 = [r for r in rows if r.level <= 2 and r.status != "N/A"]
    l3 = [r for r in rows if r.level == 3 and r.chapter in L3_CHAPTERS and r.status != "N/A"]
    return {
        "l2_met": share(sum(r.status == "met" for r in l2), len(l2)),
        "l2_tested": share(sum(r.status == "met" and bool(r.tests) for r in l2), len(l2)),
        "l3_met": share(sum(r.status == "met" for r in l3), len(l3)),
    }


def test_the_summary_claims_no_more_than_the_rows_show(rows: list[Row], document: str) -> None:
    claimed = SUMMARY.search(document)
    assert claimed, "the summary line is missing or reworded"
    actual = figures(rows)
    print(
        "ASVS mapping: L2 met {l2_met:.1f} %, L2 met and tested {l2_tested:.1f} %, "
        "L3 (V6, V7, V11, V16) met {l3_met:.1f} %".format(**actual)
    )
    for name, value in actual.items():
        assert float(claimed.group(name)) <= round(value, 1), f"{name} overstated"


def test_the_parser_reads_escaped_bars_and_several_tests() -> None:
    line = (
        "| 9.9.9 | 2 | Text… | met | `src/a.py::f`; `src/b.py` | `tests/x.py::test_a[id]`; "
        "`tests/y.py::test_b` | a \\| b |"
    )
    (row,) = parse(line)
    assert row.code == ("src/a.py::f", "src/b.py")
    assert row.tests == ("tests/x.py::test_a[id]", "tests/y.py::test_b")
