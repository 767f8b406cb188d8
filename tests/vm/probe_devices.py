"""Opens device nodes and says what happened, as JSON: ``{"path": "ok" | "EPERM" ...}``.

Run inside the test VM by tests/vm/test_vm_service.py as the service's user, once in
the service's own cgroup (where its ``DevicePolicy=``/``DeviceAllow=`` apply) and once
outside it, so that a denial can be told apart from file permissions. ``pty`` opens a
new pseudo-terminal pair instead of a path. Standard library only (the guest's python3).
"""

from __future__ import annotations

import errno
import json
import os
import sys


def attempt(path: str) -> str:
    try:
        if path == "pty":
            master, slave = os.openpty()
            os.close(slave)
            os.close(master)
            return "ok"
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    os.close(fd)
    return "ok"


if __name__ == "__main__":
    print(json.dumps({path: attempt(path) for path in sys.argv[1:]}))
