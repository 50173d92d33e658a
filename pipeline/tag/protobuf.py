"""Just enough of the protobuf wire format to read and write Caffe models, so loading the official
weights needs neither caffe nor protoc-generated code.

A message is a sequence of (field number, wire type, value). Length-delimited values come back as
memoryviews into the caller's buffer: a 200 MB caffemodel is never copied field by field.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")


def iter_fields(buf: memoryview | bytes) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for every field of one message."""
    buf = memoryview(buf)
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == LENGTH:
            n, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise WireError(f"unsupported wire type {wire} (field {field}) at byte {pos}")
        if pos > len(buf):
            raise WireError(f"field {field} runs past the end of its message ({pos} > {len(buf)} bytes)")
        yield field, wire, value


def zigzag_free_int(value: int, bits: int = 64) -> int:
    """A varint read as a signed two's-complement integer (int32/int64 fields, not sint)."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def packed_varints(value: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(value):
        v, pos = read_varint(value, pos)
        out.append(zigzag_free_int(v))
    return out
