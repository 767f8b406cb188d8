"""The state directory: private, one gateway at a time, and plain words when unusable.

- Private: the directory is 0700 and every file in it 0600 whatever the umask (the
  database holds full card numbers and MAC addresses). ``prepare`` tightens what an
  older version or another umask left behind, for files this user owns.
- One gateway at a time: ``StateLock`` holds ``flock(LOCK_EX)`` on ``gateway.lock`` for
  the daemon's life and writes its pid there, so a second ``run`` on the same directory
  is refused naming the holder; ``holder()`` answers "who runs here?" without writing
  (``status`` uses it to tell a running daemon from a stale one).
- Plain words: ``diagnose`` turns "the database cannot be opened" into what is really
  wrong (read-only file system, disk full, permissions, not a directory), so nobody is
  invited to delete a database full of queued check-ins.

Errors are ``StateDirError`` (a ``StorageError``): the environment is wrong, restarting
will not fix it, so the CLI exits 2 (the unit's ``RestartPreventExitStatus=2``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from gateway.errors import StorageError

LOCK_NAME = "gateway.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
# Below this much free space SQLite cannot be trusted to commit a check-in (a WAL frame
# is a page plus header; a checkpoint needs room too): report "disk full" at start.
MIN_FREE_BYTES = 64 * 1024


class StateDirError(StorageError):
    """The state directory cannot be used; the message says why and names the path."""


class StateDirBusy(StateDirError):
    """Another gateway process holds the state directory's lock."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def diagnose(state_dir: Path, exc: BaseException | None = None) -> str | None:
    """What is wrong with ``state_dir`` for a gateway that must write there, in words,
    or None when nothing is found. ``exc`` (an OSError or sqlite3 error that brought us
    here) is read for its errno first."""
    code = getattr(exc, "errno", None)
    text = str(exc) if exc is not None else ""
    if code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text:
        return f"{state_dir}: the disk is full ({_free(state_dir)})"
    says_read_only = code == errno.EROFS or "readonly" in text.replace("-", "").replace(" ", "")
    if says_read_only and read_only(state_dir):
        return f"{state_dir}: the file system is mounted read-only"
    if code in (errno.EACCES, errno.EPERM):
        return f"{state_dir}: permission denied ({_who(state_dir)})"
    return _inspect(state_dir)


def _inspect(state_dir: Path) -> str | None:
    try:
        st = state_dir.stat()
    except FileNotFoundError:
        parent = next((p for p in state_dir.parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK | os.X_OK):
            if read_only(parent):
                return f"{state_dir} does not exist and {parent} is on a read-only file system"
            return f"{state_dir} does not exist and {parent} may not be written ({_who(parent)})"
        return None
    except OSError as exc:
        return f"{state_dir}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{state_dir} is not a directory"
    if read_only(state_dir):
        return f"{state_dir}: the file system is mounted read-only"
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return f"{state_dir}: permission denied ({_who(state_dir)})"
    for name in os.listdir(state_dir):  # noqa: PTH208 - names only
        path = state_dir / name
        if path.is_file() and not os.access(path, os.R_OK | os.W_OK):
            return f"{path}: permission denied ({_who(path)})"
    try:
        vfs = os.statvfs(state_dir)
    except OSError:
        return None
    if vfs.f_bavail * vfs.f_frsize < MIN_FREE_BYTES:
        return f"{state_dir}: the disk is full ({_free(state_dir)})"
    return None


def read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _free(path: Path) -> str:
    try:
        vfs = os.statvfs(path)
    except OSError:
        return "free space unknown"
    return f"{vfs.f_bavail * vfs.f_frsize // 1024} KiB free"


def _who(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"running as uid {os.geteuid()}"
    return (
        f"owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}; running as uid {os.geteuid()}"
    )


def _fail(state_dir: Path, what: str, exc: BaseException) -> StateDirError:
    words = diagnose(state_dir, exc) or f"{state_dir}: {what}: {exc}"
    return StateDirError(words)


def prepare(state_dir: Path) -> None:
    """Create ``state_dir`` 0700 (whatever the umask) and make what is in it private.

    Raises StateDirError saying what is wrong (read-only, full, permissions)."""
    try:
        state_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        st = state_dir.stat()
    except OSError as exc:
        raise _fail(state_dir, "cannot create", exc) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{state_dir} is not a directory")
    problem = _inspect(state_dir)
    if problem is not None:
        raise StateDirError(problem)
    try:
        _tighten(state_dir, st, DIR_MODE)
        for name in os.listdir(state_dir):  # noqa: PTH208 - names only
            path = state_dir / name
            with contextlib.suppress(FileNotFoundError):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode):
                    _tighten(path, st, FILE_MODE)
    except OSError as exc:
        raise _fail(state_dir, "cannot set permissions", exc) from exc


def _tighten(path: Path, st: os.stat_result, mode: int) -> None:
    """chmod to ``mode`` when group or others have more; only what we own."""
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~mode:
        path.chmod(mode)


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (whatever the umask),
    so SQLite, which gives its -wal and -shm files the database's mode, keeps them
    private too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


class StateLock:
    """``flock(LOCK_EX)`` on ``<state_dir>/gateway.lock`` while the gateway runs.

    The kernel drops the lock when the process dies (even by SIGKILL), so a stale lock
    file never blocks a restart; the file stays (unlinking a lock file races)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, *, best_effort: bool = False) -> None:
        """Raise StateDirBusy naming the pid that holds the lock, StateDirError when the
        lock file cannot be written.

        ``best_effort`` (a state directory already found unusable, the gateway running
        from memory): an existing lock file is locked read-only (``flock`` needs no
        write access), so a second gateway is still refused; the pid is not written; if
        the file cannot be opened at all, no lock is taken (nothing on disk to share)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            if not best_effort:
                raise _fail(self.path.parent, f"cannot open {self.path}", exc) from exc
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "another process"
            raise StateDirBusy(
                f"{self.path.parent} is in use by another checkin-gateway ({who} holds "
                f"{self.path}); stop it first, or give this one its own state_dir",
                pid,
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            if not best_effort:
                os.close(fd)
                raise _fail(self.path.parent, f"cannot write {self.path}", exc) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(state_dir: Path) -> int | None:
    """The pid of the gateway running on ``state_dir`` (0 when its lock is held but the
    pid unreadable), or None when none is.

    Read-only: opens the lock file for reading (never creates it) and tries a shared
    lock; a held exclusive lock means a live daemon, whatever the file's age. Raises
    PermissionError when this user may not look (the state dir is the service's, 0700):
    "not running" would then be a guess."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
