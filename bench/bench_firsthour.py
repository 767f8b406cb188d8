"""Clone to the demo's first prompt (issue 13, case 1): what a newcomer waits for.

``git clone`` of this repository's HEAD into a temporary directory, then ``make demo``
there, timed until the demo prints "Tap away." (then ``quit``). The demo's virtualenv
is made from scratch each time; pip's download cache is whatever this machine has (on a
fresh machine add the download time of aiohttp, aiosqlite and structlog). Also the size
of that virtualenv, against the dev one ``make test`` uses.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import REPO, median

RUNS = 2


def _size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _once(folder: Path) -> tuple[float, float]:
    clone = folder / "clone"
    start = time.monotonic()
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    proc = subprocess.Popen(
        ["make", "-s", "demo"],
        cwd=clone,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        if "Tap away." in line:
            break
    else:
        raise RuntimeError("make demo ended before its first prompt")
    elapsed = time.monotonic() - start
    proc.stdin.write("quit\n")
    proc.stdin.close()
    proc.wait(timeout=60)
    return elapsed, _size_mib(clone / ".venv-demo")


def main() -> None:
    if shutil.which("make") is None or shutil.which("git") is None:
        print("(make or git missing: skipped)")
        return
    times, sizes = [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as folder:
            elapsed, size = _once(Path(folder))
            times.append(elapsed)
            sizes.append(size)
    dev = REPO / ".venv"
    dev_size = f"{_size_mib(dev):.0f} MiB" if dev.is_dir() else "n/a (no .venv here)"
    print("| measure | value |")
    print("|---|---|")
    print(f"| git clone to the demo's first prompt, median of {RUNS} | {median(times):.1f} s |")
    print(f"| the demo's virtualenv (.venv-demo) | {median(sizes):.0f} MiB |")
    print(f"| the dev virtualenv `make test` uses (.venv) | {dev_size} |")
