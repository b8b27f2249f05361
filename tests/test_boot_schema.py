"""osvkit.structs.base: the one place construct errors become osvkit errors."""

from __future__ import annotations

import pytest
from construct import Array, Bytes, Const, GreedyBytes, Int8ul, Int16ul, Int32ul, Struct

from osvkit.structs import base as schema
from osvkit.errors import FormatError, LayoutError

Inner = Struct("magic" / Const(b"AB"), "value" / Int16ul)
Outer = Struct("first" / Int8ul, "_hidden" / Int8ul, "inner" / Inner, "tail" / Bytes(3))


def test_field_offsets_nested_and_hidden():
    assert schema.field_offsets(Outer) == {"first": 0, "inner": 2, "inner.magic": 2,
                                           "inner.value": 4, "tail": 6}
    # fields after a variable-size field have no fixed offset
    assert schema.field_offsets(Struct("a" / Int32ul, "b" / GreedyBytes, "c" / Int8ul)) == {
        "a": 0, "b": 4}


def test_parse_and_plain():
    c = schema.parse(Outer, b"\x01\x02AB\x34\x12xyz", what="thing")
    assert c.inner.value == 0x1234
    assert schema.plain(c) == {"first": 1, "inner": {"magic": b"AB", "value": 0x1234},
                               "tail": b"xyz"}
    assert schema.plain(schema.parse(Struct("a" / Array(2, Int8ul)), b"\1\2", what="x")) == \
        {"a": [1, 2]}


def test_parse_at_offset():
    data = b"\xff" * 5 + b"\x01\x02AB\x34\x12xyz"
    assert schema.parse(Outer, data, what="thing", offset=5).tail == b"xyz"


def test_wrong_magic_names_file_offset_field_and_expectation():
    data = b"\0" * 16 + b"\x01\x02AX\x34\x12xyz"
    with pytest.raises(FormatError) as exc:
        schema.parse(Outer, data, what="thing", path="f.bin", offset=16)
    assert str(exc.value) == ("f.bin: thing at 0x10: field inner.magic (0x12) is b'AX', "
                              "expected b'AB'")
    assert exc.value.exit_status == 65


def test_integer_magic_is_shown_in_hex():
    with pytest.raises(FormatError, match=r"field m \(0x0\) is 0x1, expected 0xaa55"):
        schema.parse(Struct("m" / Const(0xAA55, Int16ul)), b"\1\0", what="x")


def test_short_buffer():
    with pytest.raises(FormatError) as exc:
        schema.parse(Outer, b"\x01\x02AB", what="thing", path="f.bin")
    assert str(exc.value) == "f.bin: thing at 0x0 is truncated: 4 bytes, expected 9 bytes"
    with pytest.raises(FormatError, match=r"thing at 0x20 is past the end of the data "
                                          r"\(9 bytes\), expected 9 bytes"):
        schema.parse(Outer, b"\0" * 9, what="thing", offset=0x20)


def test_variable_size_struct_running_out():
    Var = Struct("n" / Int8ul, "items" / Array(lambda ctx: ctx.n, Int32ul))
    with pytest.raises(FormatError, match=r"^v: var at 0x0: field items \(0x1\) runs past the end "
                                          r"of the data, expected a complete structure$"):
        schema.parse(Var, b"\x03\0\0\0\0", what="var", path="v")


def test_build_errors_are_layout_errors():
    assert schema.build(Inner, {"value": 7}) == b"AB\x07\x00"
    with pytest.raises(LayoutError, match=r"cannot build inner: field value: .*70000"):
        schema.build(Inner, {"value": 70000}, what="inner")


def test_format_error_shape():
    err = schema.format_error("MP table", "is 0x12", path="d", offset=0x10, field="checksum",
                              field_offset=0x17, expected="0x34")
    assert str(err) == "d: MP table at 0x10: field checksum (0x17) is 0x12, expected 0x34"
    assert str(schema.format_error("x", "went wrong")) == "x at 0x0: went wrong"
