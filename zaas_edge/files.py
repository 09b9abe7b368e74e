"""Writing a file so a crash or a power cut leaves the old content or the new one, never half.

One helper for every file the gateway keeps outside SQLite: the sync identity
and enrollment, the LoRa session keys, the record of rows a stop could not write.
"""

from __future__ import annotations

__all__ = ["atomic_write"]

import os
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically and durably.

    The temporary file is created with ``mode`` from the start (no window in
    which a key is readable by others), fsynced, renamed over ``path``, and
    the directory fsynced so the rename itself is durable. On any failure the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed it; never widened beyond mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
