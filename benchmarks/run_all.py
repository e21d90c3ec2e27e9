"""Every benchmark, one after the other (``make bench``). Each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_load.py",
    "bench_accuracy.py",
    "bench_bayes.py",
    "bench_ranking.py",
    "bench_scale.py",
    "bench_serve.py",
]

if __name__ == "__main__":
    failures = 0
    for script in SCRIPTS:
        print(f"\n$ python benchmarks/{script}", flush=True)
        failures += subprocess.call([sys.executable, str(HERE / script)]) != 0
    sys.exit(1 if failures else 0)
