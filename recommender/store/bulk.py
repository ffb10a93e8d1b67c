"""Bulk writes: COPY fed from an iterator of text lines, a chunk at a time, so a model of
millions of rows is never held as one text in memory."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

CHUNK_BYTES = 1 << 20  # text handed to COPY per read


class _Lines(io.RawIOBase):
    """A readable file over an iterator of lines; what `copy_expert` reads from."""

    def __init__(self, lines: Iterable[str]) -> None:
        super().__init__()
        self.lines: Iterator[str] = iter(lines)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = CHUNK_BYTES if size is None or size < 0 else size
        parts, length = [self.pending], len(self.pending)
        for line in self.lines:
            parts.append(line.encode())
            length += len(parts[-1])
            if length >= size:
                break
        data = b"".join(parts)
        self.pending = data[size:]
        return data[:size]


def copy_in(cur, sql: str, lines: Iterable[str]) -> None:
    """Run `COPY ... FROM STDIN` (`sql`) with the rows of `lines`, each ending in a newline."""
    cur.copy_expert(sql, _Lines(lines), size=CHUNK_BYTES)
