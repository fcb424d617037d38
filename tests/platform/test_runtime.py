"""Server process tuning (run in a child process: a frozen heap is never collected)."""

from __future__ import annotations

import subprocess
import sys


def test_settle_heap_freezes_what_exists_and_collects_the_young_less_often() -> None:
    code = (
        "import gc\n"
        "from rampart.platform.runtime import GC_YOUNG_THRESHOLD, settle_heap\n"
        "built = [[i] for i in range(1000)]\n"
        "settle_heap()\n"
        "assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD\n"
        "a = []; a.append(a); del a\n"  # garbage made after the freeze is still collected
        "assert gc.collect() >= 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
