"""One compiled pass over a block of JSON lines, flagging the lines polars would read wrongly.

polars keeps one value of a duplicated key silently and turns a lone surrogate escape
(`\\ud800`) into NUL; this scan marks, per line, a key seen twice in one object, a key with
an escape (it cannot be compared byte for byte), a `\\ud800`-`\\udfff` escape (a valid
pair too), a NUL byte, nesting deeper than `MAX_DEPTH` or an object with more than
`MAX_KEYS` keys.
Flagged lines are checked exactly, one by one, by `fpi.validate.check_record_json`; a flag
is a suspicion (keys are compared by a 64-bit hash), never a verdict.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_DEPTH = 32
MAX_KEYS = 48
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _is_surrogate_escape(buf: np.ndarray, i: int) -> bool:
    """True when buf[i:i+2] starts d800-dfff (any case)."""
    a, b = buf[i], buf[i + 1]
    if a == 100 or a == 68:  # d or D
        return (56 <= b <= 57) or (97 <= b <= 102) or (65 <= b <= 70)  # 8-9, a-f, A-F
    return False


def _table(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=np.bool_)
    table[list(chars)] = True
    return table


#: Bytes that matter outside a string, and inside one.
_STRUCTURE = _table(b'"{}[],\n\x00')
_IN_STRING = _table(b'"\\\n\x00')


@njit(cache=True, nogil=True)
def _suspect_lines(
    buf: np.ndarray, n_lines: int, structure: np.ndarray, in_text: np.ndarray
) -> np.ndarray:
    flags = np.zeros(n_lines + 1, dtype=np.bool_)
    keys = np.empty(MAX_DEPTH * MAX_KEYS, dtype=np.uint64)
    counts = np.zeros(MAX_DEPTH, dtype=np.int64)
    is_object = np.zeros(MAX_DEPTH, dtype=np.bool_)
    line = 0
    depth = 0
    in_string = False
    string_is_key = False
    expect_key = False
    h = _FNV_OFFSET
    n = buf.size
    i = 0
    while i < n:
        c = buf[i]
        if in_string and not string_is_key:  # skip plain text fast
            while not in_text[c]:
                i += 1
                if i == n:
                    return flags[:n_lines]
                c = buf[i]
        elif not in_string:  # skip numbers, literals and spaces fast
            while not structure[c]:
                i += 1
                if i == n:
                    return flags[:n_lines]
                c = buf[i]
        if c == 10:  # a newline ends the line whatever the state
            line += 1
            depth = 0
            in_string = False
            expect_key = False
        elif c == 0:
            flags[line] = True
        elif in_string:
            if c == 34:  # closing quote
                in_string = False
                if string_is_key:
                    level = depth - 1
                    k = counts[level]
                    base = level * MAX_KEYS
                    for j in range(k):
                        if keys[base + j] == h:
                            flags[line] = True
                    if k >= MAX_KEYS:
                        flags[line] = True
                    else:
                        keys[base + k] = h
                        counts[level] = k + 1
                    expect_key = False
            elif c == 92:  # backslash: an escape
                if string_is_key:
                    flags[line] = True
                if i + 5 < n and buf[i + 1] == 117 and _is_surrogate_escape(buf, i + 2):
                    flags[line] = True
                i += 1  # skip the escaped character
            else:  # a byte of a key
                h = (h ^ np.uint64(c)) * _FNV_PRIME
        elif c == 34:
            in_string = True
            string_is_key = expect_key and depth > 0 and is_object[depth - 1]
            h = _FNV_OFFSET
        elif c == 123 or c == 91:  # { or [
            if depth >= MAX_DEPTH:
                flags[line] = True
            else:
                is_object[depth] = c == 123
                counts[depth] = 0
                depth += 1
                expect_key = c == 123
        elif c == 125 or c == 93:  # } or ]
            if depth > 0:
                depth -= 1
            expect_key = False
        elif c == 44:  # ,
            expect_key = depth > 0 and is_object[depth - 1]
        i += 1
    return flags[:n_lines]


def suspect_lines(data: bytes, n_lines: int) -> np.ndarray:
    """Indices (0-based, within `data`) of the lines to check one by one."""
    if not data:
        return np.zeros(0, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    return np.flatnonzero(_suspect_lines(buf, n_lines, _STRUCTURE, _IN_STRING))
