"""Runs every bench/bench_*.py in turn; each prints its own figures."""

import runpy
import sys
from pathlib import Path

for script in sorted(Path(__file__).parent.glob("bench_*.py")):
    if len(sys.argv) > 1 and not any(name in script.name for name in sys.argv[1:]):
        continue
    runpy.run_path(str(script), run_name="__main__")
