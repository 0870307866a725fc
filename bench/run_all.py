"""Runs every bench/bench_*.py in turn (or those whose names contain an argument); each prints
its own figures. One that cannot run (wrk missing, a store unreachable) says why, and the rest
still run; the exit status is then 1."""

import runpy
import sys
import traceback
from pathlib import Path

failed = []
for script in sorted(Path(__file__).parent.glob("bench_*.py")):
    if len(sys.argv) > 1 and not any(name in script.name for name in sys.argv[1:]):
        continue
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code if isinstance(exc.code, str) else f"{script.name} exited {exc.code}")
            failed.append(script.name)
    except Exception:
        traceback.print_exc()
        failed.append(script.name)
if failed:
    print(f"\nbench: did not complete: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1)
