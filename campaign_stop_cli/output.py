"""How every command writes: the output modes (table, json, jsonl), a console that wraps and cuts nothing when
stdout is not a terminal, a plain one-line-per-event writer and the exit-code rule.

One place, so that every command (and the ones added later) reads the same in a terminal, a pipe and a log."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from rich.console import Console

# -- the exit-code rule -------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILED = 1  # some request or campaign failed (or an AWS call failed for another reason than the setup)
EXIT_USAGE = 2  # usage or configuration error: a flag, a missing setting, a resource that does not exist
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130  # stop --wait / schedule fire --wait ended by Ctrl-C (or SIGTERM, SIGHUP): 128 + SIGINT

SUCCESSFUL_OUTCOMES = frozenset({"stopped", "already_stopped", "dry_run", "ignored", "resumed"})
FAILED_OUTCOMES = frozenset({"failed", "rejected"})

# AWS error codes that mean the configuration points at something that is not there (or not ours to use).
_CONFIGURATION_ERRORS = ("NonExistentQueue", "QueueDoesNotExist", "NotFound", "ResourceNotFoundException",
                         "ParameterNotFound", "InvalidAddress", "InvalidClientTokenId", "UnrecognizedClientException",
                         "AccessDenied", "AuthorizationError", "InvalidParameterValue")


def aws_error_exit_code(error: BaseException) -> int:
    """The exit code an AWS error means: 2 when the setup is wrong (a queue, topic, table or parameter that does
    not exist, credentials or a region missing, access denied), 1 for anything else (a call that failed)."""
    if isinstance(error, NoCredentialsError | NoRegionError):
        return EXIT_USAGE
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code") or "")
        if any(code.endswith(name) or code.startswith(name) for name in _CONFIGURATION_ERRORS):
            return EXIT_USAGE
    return EXIT_FAILED


def outcomes_exit_code(outcomes: Iterable[Any], timed_out: bool = False, interrupted: bool = False) -> int:
    """The rule for results: 130 interrupted, 3 timed out, 1 when any campaign failed or was rejected, else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    if timed_out:
        return EXIT_TIMEOUT
    return EXIT_FAILED if any(str(outcome) in FAILED_OUTCOMES for outcome in outcomes) else EXIT_OK


# -- output modes -------------------------------------------------------------------------------------------


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"

    @property
    def machine(self) -> bool:
        """json or jsonl: stdout carries only JSON; progress and notes go to stderr or nowhere."""
        return self is not OutputFormat.TABLE


OUTPUT_HELP = ("table (for people; plain lines when stdout is not a terminal), json (one document) or jsonl (one "
               "JSON object a line); overrides the global --output.")

_current_mode: ContextVar[OutputFormat] = ContextVar("campaign_stop_output", default=OutputFormat.TABLE)


def use_mode(mode: OutputFormat) -> OutputFormat:
    """Note the command's mode, for print_json (called by common.output_format as each command starts)."""
    _current_mode.set(mode)
    return mode


def print_json(document: Any, records: str | None = None, mode: OutputFormat | None = None) -> None:
    """The command's JSON: json, one indented document; jsonl, one compact object a line: each item of a list,
    or of ``document[records]`` when the document is a listing (its other keys are left out), else the document."""
    mode = mode or _current_mode.get()
    if mode is OutputFormat.JSONL:
        items = document if isinstance(document, list) else (
            document.get(records) if records and isinstance(document, dict) else None)
        for item in items if isinstance(items, list) else [document]:
            print_json_line(item)
        return
    _write(json.dumps(document, indent=2, sort_keys=False, default=str))


def print_json_line(document: Any) -> None:
    """One JSON object on one line, flushed at once (a --follow's events, a jsonl listing)."""
    _write(json.dumps(document, separators=(",", ":"), default=str))


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- consoles -----------------------------------------------------------------------------------------------

PLAIN_WIDTH = 10_000  # not a terminal: wide enough that Rich never wraps, folds or cuts a cell


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def console() -> Console:
    """Rich on stdout: a terminal's own width there; elsewhere (a pipe, a file, a log) no colour, and no wrapping or
    cutting unless COLUMNS is exported (then that width, as on a terminal of that size: bash sets COLUMNS without
    exporting it). Made per call: the streams may be replaced (tests, redirection)."""
    return _console(sys.stdout)


def error_console() -> Console:
    return _console(sys.stderr)


def _console(stream: Any) -> Console:
    if _isatty(stream) or os.environ.get("COLUMNS", "").strip().isdigit():
        return Console(file=stream, soft_wrap=True)
    return Console(file=stream, soft_wrap=True, width=PLAIN_WIDTH, color_system=None, force_terminal=False,
                   force_interactive=False)


def share_of_width() -> int | None:
    """A column's ratio: on a terminal it takes the width left over; elsewhere none, as the console is
    PLAIN_WIDTH wide and a ratio column would pad every row out to it."""
    return 1 if _isatty(sys.stdout) or os.environ.get("COLUMNS", "").strip().isdigit() else None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass
class LineWriter:
    """Events one per line, in columns padded to a width but never cut or wrapped (a longer value widens its own
    line only): what `results --follow` prints, on a terminal and in a pipe alike. The last column takes the
    rest of the line. The header is written once, before the first row."""

    columns: Sequence[tuple[str, int]]  # (heading, width)
    _started: bool = field(default=False)

    def header(self) -> None:
        self._line([heading.upper() for heading, _ in self.columns])
        self._started = True

    def row(self, cells: Sequence[str]) -> None:
        if not self._started:
            self.header()
        self._line(cells)

    def _line(self, cells: Sequence[str]) -> None:
        widths = [width for _, width in self.columns]
        parts = [one_line(cell).ljust(width) for cell, width in zip(cells[:-1], widths[:-1], strict=False)]
        _write("  ".join([*parts, one_line(cells[-1]) if cells else ""]).rstrip())


def one_line(text: Any) -> str:
    """A cell on one line: a newline or tab in an API's message would split the event."""
    return " ".join(str(text).split()) if text is not None else ""
