import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import BadMagicByte, SerdeError, TruncatedRecord
from schemas.wire import frame, unframe


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=200))
def test_frame_round_trips(schema_id: int, body: bytes) -> None:
    framed = frame(schema_id, body)
    assert framed[0] == 0
    assert int.from_bytes(framed[1:5], "big") == schema_id
    found_id, found_body = unframe(framed)
    assert (found_id, bytes(found_body)) == (schema_id, body)


def test_wrong_magic_byte_is_a_typed_error() -> None:
    with pytest.raises(BadMagicByte, match="magic byte is 1"):
        unframe(b"\x01\x00\x00\x00\x07body")


@pytest.mark.parametrize("data", [None, b"", b"\x00\x00\x00\x01"])
def test_short_records_are_truncated(data: bytes | None) -> None:
    with pytest.raises(TruncatedRecord):
        unframe(data)


def test_every_serde_error_is_dead_letterable() -> None:
    for error in (BadMagicByte, TruncatedRecord):
        assert issubclass(error, SerdeError)
        assert error.reason != SerdeError.reason


def test_schema_id_must_fit_four_bytes() -> None:
    with pytest.raises(ValueError):
        frame(2**32, b"")
