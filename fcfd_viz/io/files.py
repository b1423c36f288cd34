"""Small, safe file I/O for run directories: atomic writes, OS errors as one-line user errors,
JSON readers that never raise on junk, and cheap tail reads.

Writers: :func:`atomic_write` (temp file in the same folder, fsync, rename; the temp file is
removed on any error) and :func:`user_os_errors`, which turns an ``OSError`` (disk full,
read-only file system, a parent that is a file) into a :class:`UserError` naming the path and
the fix. Readers: :func:`read_object` answers ``(dict, None)`` or ``(None, why)``, so a
listing can show a broken run as one row instead of failing.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fcfd_viz.errors import UserError

TEMP_SUFFIX = ".tmp"


def os_error_message(path: str | os.PathLike, e: OSError, flag: str = "--out") -> str:
    """``cannot write PATH: reason; fix`` for an OS error met while writing ``path``;
    ``flag`` names what the user gave the path as (``--out``, a command's ``DIR``)."""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free some space or choose another {flag}"
    elif e.errno == errno.EROFS:
        fix = f"the file system is read-only: choose another {flag}"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = f"a file stands where a directory is needed: choose another {flag}"
    else:
        fix = f"choose another {flag}"
    return f"cannot write {path}: {reason}; {fix}"


def find_os_error(e: BaseException) -> OSError | None:
    """The ``OSError`` behind ``e`` (torch.save wraps a failed write in a RuntimeError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return None


@contextmanager
def user_os_errors(path: str | os.PathLike, flag: str = "--out") -> Iterator[None]:
    """Turn an OS error in the block (also one wrapped by torch) into a one-line UserError
    (its fix names ``flag``, what the user gave the path as)."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        os_error = find_os_error(e)
        if os_error is None:
            raise
        raise UserError(os_error_message(path, os_error, flag)) from None


def fault_point(*where: str) -> None:
    """Test hook: with ``FCFD_FAULT`` set to ``":".join(where)`` (``after-checkpoint:2``,
    ``mid-write:last.pt``) this process SIGKILLs itself there, so a test can kill a real run
    at an exact moment. Unset (always, outside tests): nothing happens."""
    if os.environ.get("FCFD_FAULT") == ":".join(where):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_with(
    path: str | os.PathLike, write: Callable[[Any], None], flag: str = "--out"
) -> None:
    """Call ``write(binary file)`` on a temp file beside ``path``, fsync, rename onto ``path``.

    A reader sees the old file or the new one, never half of one; a crash leaves at most a
    ``.NAME.*.tmp`` file, which the next writer of a run directory sweeps. A failure is a
    one-line UserError whose fix names ``flag``.
    """
    path = Path(path)
    with user_os_errors(path, flag):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            fault_point("mid-write", path.name)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write(path: str | os.PathLike, data: bytes | str, flag: str = "--out") -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_with`)."""
    raw = data.encode() if isinstance(data, str) else data
    atomic_write_with(path, lambda f: f.write(raw), flag)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# stat key -> parsed value; a run folder is re-listed every page render and every 2 s poll,
# but its files change rarely (atomic writes change the inode, appends the size)
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_SIZE = 2048


def cached(path: str | os.PathLike, parse: Callable[[Path], Any]) -> Any:
    """``parse(path)``, memoised on the file's (inode, size, mtime); OSError if it is gone."""
    path = Path(path)
    st = path.stat()
    key = (str(path), parse.__qualname__, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = parse(path)
    _CACHE[key] = value
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


MAX_JSON_BYTES = 16 << 20  # config, status, summary and job records are a few KB


def is_regular(path: str | os.PathLike) -> bool:
    """A regular file (not a directory, FIFO or device: reading those could fail or block)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _parse_object(path: Path) -> tuple[dict | None, str | None]:
    st = path.stat()  # FileNotFoundError: absent, which read_object reports as (None, None)
    if not stat.S_ISREG(st.st_mode):
        return None, f"{path.name} is not a regular file"
    if st.st_size > MAX_JSON_BYTES:
        return None, f"{path.name} is too large ({st.st_size} bytes)"
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text"
    except ValueError as e:
        return None, f"{path.name} is not valid JSON ({str(e).split(':')[0]})"
    except RecursionError:
        return None, f"{path.name} is nested too deeply"
    if not isinstance(obj, dict):
        return None, f"{path.name} holds a JSON {type(obj).__name__}, not an object"
    return obj, None


def read_object(path: str | os.PathLike, cache: bool = False) -> tuple[dict | None, str | None]:
    """``(dict, None)`` for a JSON object file, ``(None, None)`` when absent, else
    ``(None, why)``; never raises. With ``cache`` the dict is memoised on the file's stat
    and shared between callers: do not modify it."""
    try:
        return cached(path, _parse_object) if cache else _parse_object(Path(path))
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"{Path(path).name}: {e.strerror or e}"


def tail_lines(path: str | os.PathLike, nbytes: int) -> list[bytes]:
    """The complete lines within the last ``nbytes`` bytes of ``path``, oldest first.

    A last line without its newline (a writer killed mid-append) is left out, and so is a
    first line that starts before the window.
    """
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        start = max(0, end - nbytes)
        f.seek(start)
        lines = f.read(end - start).split(b"\n")[:-1]
    return lines[1:] if start > 0 else lines
