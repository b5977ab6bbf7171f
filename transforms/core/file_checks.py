"""What a local path is, before anything opens it: a regular file, or a clear ``ImageError``.

Opening a FIFO blocks forever and a directory cannot be read, so readers of image files and of
shards look first and turn every other kind of name into an error record.
"""

from __future__ import annotations

import errno
import os
import stat

from transforms.core import records


def file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def stat_regular_file(path: str) -> os.stat_result:
    """``os.stat`` of a local regular file (following symbolic links).

    Raises:
      ImageError: not_found, broken_symlink, symlink_loop, not_a_regular_file or read_error.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise records.ImageError(
                "read", records.BROKEN_SYMLINK, "a symbolic link to a file that does not exist"
            ) from None
        raise records.ImageError("read", records.NOT_FOUND, "no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise records.ImageError(
                "read", records.SYMLINK_LOOP, "a loop of symbolic links (too many levels)"
            ) from None
        raise records.ImageError("read", records.READ_ERROR, f"cannot read: {e.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise records.ImageError(
            "read", records.NOT_A_REGULAR_FILE, f"{file_kind(info.st_mode)}; not opened"
        )
    return info
