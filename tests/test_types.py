"""Column types written as text: lh.parse_type reads what the command line's --schema takes and
what describe() prints, and says how to write an array type it cannot read."""

from __future__ import annotations

import pytest

import lakehouse as lh


@pytest.mark.parametrize(("text", "expected"), [
    ("int", lh.Int),
    (" Image ", lh.Image),
    ("array", lh.Array),
    ("array[3]", lh.Array[(3,), "float32"]),
    ("array[512, float16]", lh.Array[(512,), "float16"]),
    ("ARRAY [ 4 , int8 ]", lh.Array[(4,), "int8"]),
    ("array[*, 3, uint8]", lh.Array[(None, 3), "uint8"]),
    ("array[2, 2]", lh.Array[(2, 2), "float32"]),
    ("Array[(3,), float32]", lh.Array[(3,), "float32"]),  # as describe() prints it
    ("Array[(None, 2), int8]", lh.Array[(None, 2), "int8"]),
])
def test_parse_type_reads_types_written_as_text(text: str, expected: lh.ColumnType) -> None:
    assert lh.parse_type(text, column="c") == expected
    assert lh.parse_type(str(expected), column="c") == expected  # describe()'s text reads back


@pytest.mark.parametrize(("text", "message"), [
    ("strin", r"column 'c': 'strin' is not a column type; use lh.String, .* \(as text: string, "
              r"int, .*array\[D\] or array\[D, dtype\]"),
    ("array[]", r"'array\[\]' is not an array type; give its length"),
    ("array[x]", r"is not an array type"),
    ("array[3, float99]", r"column 'c': unsupported array dtype 'float99'"),
])
def test_parse_type_names_the_column_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(lh.TypeMismatchError, match=message):
        lh.parse_type(text, column="c")


def test_values_out_of_range_are_invalid_options_not_type_mismatches() -> None:
    """A dimension below 1 or a store that is not one of the choices is an InvalidOptionError
    (a ValueError); parse_type names the column and keeps the class."""
    with pytest.raises(lh.InvalidOptionError, match=r"column 'c': array shape \(0,\)"):
        lh.parse_type("array[0]", column="c")
    with pytest.raises(lh.InvalidOptionError, match="each dimension must be a positive"):
        lh.Array[(3, 0), "float32"]  # noqa: B018 - building the type raises
    with pytest.raises(lh.InvalidOptionError, match="store must be one of 'copy', 'reference'"):
        lh.Image(store="link")
    with pytest.raises(lh.TypeMismatchError, match="malformed image type in a stored table"):
        lh.ColumnType.from_json({"kind": "image", "store": "link"})


def test_tables_take_types_written_as_text(tmp_path) -> None:
    t = lh.connect(tmp_path / "lh").create_table("t", {"v": "array[2, int8]", "n": "int"})
    assert t.describe()["type"].to_list() == ["Array[(2,), int8]", "Int"]
