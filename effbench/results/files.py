"""Writing result files: one atomic writer and one JSON rule for every file effbench writes.

Nothing is half-written: a file is written to a temporary name in its own folder, flushed to disk, then renamed
over the destination (``os.replace`` is atomic on POSIX and Windows), so a reader or a crash sees the old file or
the new one. The JSON rule (sorted keys, two-space indent, a final newline, NaN and infinity refused because they
are not JSON) makes the same content the same bytes, so stored files diff cleanly.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, fsync, then rename.

    The temporary file is created with mode 0o666 less the process umask, so the result has the permissions any
    new file of the user would (``tempfile.mkstemp`` would leave it readable by the owner only).

    Args:
        path: Destination; its folder is created if missing.
        data: Text (written as UTF-8) or bytes.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # another writer picked the same name: draw again
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def json_text(obj: Any) -> str:
    """``obj`` as effbench writes JSON: sorted keys, indent 2, final newline.

    Raises:
        ValueError: If ``obj`` holds NaN or infinity (not JSON; store None for a missing number).
        TypeError: If ``obj`` holds something JSON has no type for.
    """
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` by the JSON rule (:func:`json_text`), atomically; on a refused value the old file stays."""
    return write_atomic(path, json_text(obj))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (any error propagates: callers say what the file was meant to be)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
