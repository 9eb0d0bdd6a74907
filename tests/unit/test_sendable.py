"""domain/sendable.py: exactly the characters SNS and SQS refuse are replaced, and nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stop_campaign.domain.sendable import REPLACEMENT, log_line, sendable, sendable_json


def _allowed(character: str) -> bool:
    """The allowed characters as SNS and SQS document them."""
    code = ord(character)
    return (character in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def test_every_character_of_the_basic_plane_is_kept_or_replaced_as_documented() -> None:
    for code in range(0x10000):
        character = chr(code)
        assert sendable(character) == (character if _allowed(character) else REPLACEMENT), hex(code)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_any_text_keeps_its_allowed_characters_and_can_be_encoded(text: str) -> None:
    sent = sendable(text)
    assert len(sent) == len(text)
    assert all(a == b if _allowed(a) else b == REPLACEMENT for a, b in zip(text, sent, strict=True))
    sent.encode("utf-8")  # a lone surrogate would raise here


def test_keys_and_nested_strings_are_made_sendable() -> None:
    assert sendable_json({"a\ud800": ["x\x00", {"k": "\uffff"}], "n": 1}) == {
        "a\ufffd": ["x\ufffd", {"k": "\ufffd"}], "n": 1}


def test_a_log_line_shows_a_lone_surrogate_instead_of_failing() -> None:
    line = log_line({"message": "bad \ud800 name"})
    assert "\\ud800" in line
    line.encode("utf-8")
