"""``readonly_dataclass``: a slotted dataclass that the type checker treats as frozen.

Why not ``@dataclass(frozen=True)``: freezing at run time makes the dataclass generate and compile three more
functions per class (``__setattr__``, ``__delattr__``, ``__hash__``) at every cold start: about 60 M instructions,
6 % of the handler's import, over the package's shapes (devtools/bench.py, cold_start_instructions). mypy refuses
an assignment to a field of these just as it does for a frozen one (PEP 681's ``frozen_default``). Unlike frozen
ones they are not hashable: a shape used as a field's default needs ``field(default_factory=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

Shape = TypeVar("Shape")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def readonly_dataclass(cls: type[Shape]) -> type[Shape]:
    return dataclass(slots=True)(cls)
