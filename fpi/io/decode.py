"""Decoding: what a file holds (by its first bytes), decompression (gzip, zstd, plain), and
bounded blocks of whole lines.

Memory stays bounded whatever the input: data comes in pieces of `BLOCK_BYTES`, a block holds
at most about `BLOCK_LINES` lines, and a line longer than the cap is skipped as it streams by
(only its length and first bytes are kept) instead of being held whole.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import zstandard

from fpi.errors import InputError

BLOCK_BYTES = 32 << 20  # decompressed JSONL parsed at once
BLOCK_LINES = 32_768  # lines parsed at once (tiny lines, many rejects: bounds objects)
MAX_LINE_BYTES = 16 << 20  # default cap on one line; longer lines are rejects
LONG_LINE_HEAD = 1024  # bytes of an over-long line kept for the rejects file
SNIFF_BYTES = 1 << 20  # decompressed bytes read to sniff what a file holds

_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "Parquet"}
_CONTENT = {".jsonl": "text", ".jsonl.gz": "gzip", ".jsonl.zst": "zstd", ".parquet": "Parquet"}
_BOM = b"\xef\xbb\xbf"
_ZSTD_STEP = 4096  # compressed bytes per decompression step (output at most ~128 MB)
_JSON_SPACE = b" \t\r\n"


def content_kind(path: Path) -> str:
    """What the first bytes say: "gzip", "zstd", "Parquet" or "text"."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "text")


def check_content(path: Path, fmt: str) -> None:
    """Refuse a file whose first bytes say it is something other than its name says."""
    actual = content_kind(path)
    expected = _CONTENT[fmt]
    if actual != expected:
        what = f"{actual} data" if expected == "text" else f"not {expected} data"
        raise InputError(f"{path}: {what}, but the name says {fmt}")


def decompressed(path: Path, kind: str, piece_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The decompressed bytes of a "gzip", "zstd" or "text" file in pieces of at most
    `piece_bytes`; corrupt or truncated data is an InputError."""
    done = 0
    try:
        with path.open("rb") as raw:
            if kind == "gzip":
                with gzip.GzipFile(fileobj=raw) as fh:
                    while piece := fh.read(piece_bytes):
                        done += len(piece)
                        yield piece
            elif kind == "zstd":
                for piece in _zstd_pieces(raw, piece_bytes):
                    done += len(piece)
                    yield piece
            else:
                while piece := raw.read(piece_bytes):
                    yield piece
    except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as exc:
        raise InputError(
            f"{path}: truncated or corrupt {kind} data after {done:,} decompressed bytes ({exc})"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _zstd_pieces(raw: BinaryIO, piece_bytes: int) -> Iterator[bytes]:
    """Decompress every zstd frame of a file object in pieces of about `piece_bytes`,
    refusing a frame cut short. Input goes in small steps, so one step's output stays
    bounded even for data that decompresses a thousandfold."""
    context = zstandard.ZstdDecompressor()
    frame = context.decompressobj()
    in_frame = False
    pieces: list[bytes] = []
    size = 0
    while compressed := raw.read(_ZSTD_STEP):
        while compressed:
            piece = frame.decompress(compressed)
            in_frame = True
            if piece:
                pieces.append(piece)
                size += len(piece)
                if size >= piece_bytes:
                    data = b"".join(pieces)
                    for start in range(0, len(data), piece_bytes):
                        yield data[start : start + piece_bytes]
                    pieces, size = [], 0
            if frame.eof:
                compressed, frame, in_frame = frame.unused_data, context.decompressobj(), False
            else:
                compressed = b""
    if in_frame:
        raise zstandard.ZstdError("the last frame ends early")
    if pieces:
        yield b"".join(pieces)


def _kind_of(fmt: str) -> str:
    return {".jsonl.gz": "gzip", ".jsonl.zst": "zstd"}.get(fmt, "text")


def is_blank(data: bytes) -> bool:
    """True when `data` holds only JSON whitespace (or nothing)."""
    return not data or (data.isspace() and not data.translate(None, _JSON_SPACE))


class LongLine(NamedTuple):
    """A line over the cap: its length, its first bytes, and whether it was all whitespace."""

    length: int
    head: bytes
    blank: bool


class Block(NamedTuple):
    """Whole lines starting at 1-based line `first_line`; or one over-long line."""

    data: bytes
    first_line: int
    long_line: LongLine | None = None


class _Skipping:
    """An over-long line streaming by: counted, its head kept, never held whole."""

    def __init__(self, start: bytes) -> None:
        self.length = 0
        self.head = b""
        self.blank = True
        self.add(start)

    def add(self, data: bytes) -> None:
        if len(self.head) < LONG_LINE_HEAD:
            self.head += data[: LONG_LINE_HEAD - len(self.head)]
        self.length += len(data)
        self.blank = self.blank and is_blank(data)

    def done(self) -> LongLine:
        return LongLine(self.length, self.head, self.blank)


def _by_lines(data: bytes) -> Iterator[tuple[bytes, int]]:
    """(block, its line count): `data` (whole lines) cut into blocks of at most about
    `BLOCK_LINES` lines; `data` itself (no copy) when it is small enough or blank."""
    count = data.count(b"\n")
    if count <= BLOCK_LINES or is_blank(data):
        yield data, count
        return
    start = 0
    while start < len(data):
        rest = len(data) - start
        guess = start + max(1, rest * BLOCK_LINES // max(count, 1))
        end = data.rfind(b"\n", start, guess) + 1
        if end <= start:
            end = data.find(b"\n", guess) + 1 or len(data)
        piece = data[start:end]
        lines = piece.count(b"\n")
        count -= lines
        start = end
        yield piece, lines


def line_blocks(path: Path, fmt: str, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Block]:
    """Blocks of whole lines of a JSONL dump, in order; a line over `max_line_bytes` comes as
    its own `Block` with `long_line` set (and no data). A leading byte-order mark is dropped."""
    line = 1
    carry = b""  # the start of a line whose end has not come yet
    skipping: _Skipping | None = None
    first = True
    for piece in decompressed(path, _kind_of(fmt)):
        if first:
            piece = piece.removeprefix(_BOM)
            first = False
        if skipping is not None:
            end = piece.find(b"\n")
            if end < 0:
                skipping.add(piece)
                continue
            skipping.add(piece[:end])
            yield Block(b"", line, skipping.done())
            line += 1
            skipping = None
            piece = piece[end + 1 :]
        cut = piece.rfind(b"\n") + 1
        if cut:
            whole = (
                b"".join((carry, memoryview(piece)[:cut])) if cut < len(piece) or carry else piece
            )
            carry = piece[cut:]
            for block, lines in _by_lines(whole):
                yield Block(block, line)
                line += lines
            del whole
        else:
            carry += piece
        if len(carry) > max_line_bytes:
            skipping, carry = _Skipping(carry), b""
    if skipping is not None:
        yield Block(b"", line, skipping.done())
    elif carry:
        yield Block(carry, line)


def first_line(path: Path, limit: int = SNIFF_BYTES) -> bytes | None:
    """The first non-blank line of a (possibly compressed) text file, or None when there is
    none within the first `limit` decompressed bytes (or the line is longer than that)."""
    seen = 0
    line = b""
    kind = content_kind(path)
    if kind == "Parquet":
        return None
    for piece in decompressed(path, kind, piece_bytes=64 << 10):
        seen += len(piece)
        if not line:
            piece = piece.lstrip(_JSON_SPACE)
        end = piece.find(b"\n")
        line += piece if end < 0 else piece[:end]
        if end >= 0 and line.strip():
            return line
        if seen > limit:
            return None
    return line or None
