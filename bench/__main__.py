"""Run the benchmarks: `make bench` (all) or `python -m bench audit vault` (some).

Each module in this folder that defines `run() -> list[dict]` is a benchmark. A row has `name`,
`value` and `unit`, and may carry `baseline` (a reference measured in the same process, so that
the ratio holds on a noisy machine) and `note`. Results are printed as a table and written to
`var/bench/results.json`.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def modules(selected: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    return [n for n in names if not selected or n in selected]


def main(argv: list[str]) -> int:
    console = Console()
    results: dict[str, list[dict[str, object]]] = {}
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue
        console.print(f"[bold]bench {name}[/] ...")
        started = time.perf_counter()
        rows = run()
        results[name] = rows
        table = Table(title=f"{name} ({time.perf_counter() - started:.1f} s)")
        for column in ("benchmark", "value", "unit", "baseline", "note"):
            table.add_column(column)
        for row in rows:
            value = row.get("value")
            table.add_row(
                str(row.get("name")),
                f"{value:,.2f}" if isinstance(value, float) else str(value),
                str(row.get("unit", "")),
                str(row.get("baseline", "")),
                str(row.get("note", "")),
            )
        console.print(table)
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    (out / "results.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2, default=str)
    )
    console.print(f"machine: {machine}; results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
