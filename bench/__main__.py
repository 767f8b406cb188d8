"""`make bench`: runs every ``bench/bench_*.py`` in its own process (so RSS and import
time are each benchmark's own) and prints their Markdown results.

Each benchmark module has a ``main() -> None`` that prints Markdown lines: medians and
ratios, since this machine is noisy. Pass names to run a subset: ``python -m bench serial``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    for name in names:
        print(f"\n## {name.removeprefix('bench_')}\n", flush=True)
        proc = subprocess.run(
            [sys.executable, "-c", f"import bench.{name} as m; m.main()"],
            cwd=here.parent,
            check=False,
        )
        if proc.returncode != 0:
            print(f"(benchmark {name} failed with exit code {proc.returncode})", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
