"""Text fit to leave the function: what SNS, SQS and the log accept, whatever a message or an API answer held.

A JSON escape can put a lone surrogate ("\\ud800") or a control character into any string the function reads;
such text cannot be encoded as UTF-8 (a lone surrogate) or is refused by SNS and SQS (their allowed characters
are tab, newlines, U+0020-U+D7FF, U+E000-U+FFFD and U+10000 up). Every publish, dead letter, hand-over and log
line goes through here, so no text ever makes one of them raise.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The refused characters named (the complement of the allowed ones): a negated class spanning U+10FFFF costs the
# regex compiler about 10 ms at every cold start, this one a tenth of that.
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def sendable(text: str) -> str:
    """``text`` with each character SNS and SQS refuse as U+FFFD (valid text is returned as it is)."""
    return _REFUSED.sub(REPLACEMENT, text)


def sendable_json(value: Any) -> Any:
    """A JSON value with every string in it (keys too) made ``sendable``."""
    if isinstance(value, str):
        return sendable(value)
    if isinstance(value, dict):
        return {sendable(key) if isinstance(key, str) else key: sendable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [sendable_json(item) for item in value]
    return value


def log_line(record: dict[str, Any]) -> str:
    """Powertools' own log serializer (compact, not ASCII-only), with a lone surrogate shown as ``\\udXXX``
    instead of failing the write to stdout (logging would drop the line)."""
    text = json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
