"""``readonly_dataclass``: a slotted dataclass that the type checker treats as frozen.

Why not ``@dataclass(frozen=True)``: freezing at run time makes the dataclass generate and compile three more
functions per class (``__setattr__``, ``__delattr__``, ``__hash__``) at every cold start, about a tenth of the
handler's import over the package's 31 shapes (devtools/bench.py, cold_start_instructions); mypy refuses an
assignment to a field of these just as it does for a frozen one (PEP 681's ``frozen_default``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

Shape = TypeVar("Shape")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def readonly_dataclass(cls: type[Shape]) -> type[Shape]:
    return dataclass(slots=True)(cls)
