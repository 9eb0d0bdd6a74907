"""Record: a dataclass-like base for the package's plain value classes, built without generating code.

``@dataclass`` writes the source of ``__init__``, ``__repr__`` and ``__eq__`` (and ``__setattr__``, ``__hash__``
when frozen) for each class and compiles it at every import: about 3-5 M instructions a class, which shipped
bytecode cannot save. A Record's methods are written once, here, and read the fields a subclass declares
(its annotations, in order; a class attribute of the same name is the default), so a subclass costs what a
plain class costs. Type checkers treat subclasses as dataclasses (``dataclass_transform``).

Semantics are those of ``@dataclass`` (not frozen) for what the package uses: positional or keyword fields,
defaults, ``__post_init__``, a repr of every field, equality between instances of the same class, unhashable.
Not supported: ``field()`` options, ``dataclasses.asdict``/``fields``: classes that need them stay dataclasses.
``replace`` below stands for ``dataclasses.replace``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform


@dataclass_transform()
class Record:
    __slots__ = ()
    _record_fields: ClassVar[tuple[str, ...]] = ()
    _record_required: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = [name for name, annotation in inspect.get_annotations(cls).items()
                 if not str(annotation).startswith(("ClassVar", "typing.ClassVar"))]
        inherited = [name for name in cls._record_fields if name not in names]
        cls._record_fields = (*inherited, *names)
        cls._record_required = frozenset(
            name for name in cls._record_fields if not any(name in base.__dict__ for base in cls.__mro__)
        )
        for name in names:  # one list shared by every instance: @dataclass refuses it, and so does Record
            if isinstance(cls.__dict__.get(name), list | dict | set):
                raise ValueError(f"mutable default for field {name!r} of {cls.__name__}: every instance would share it")

    if not TYPE_CHECKING:  # type checkers synthesize each subclass's own __init__ (dataclass_transform)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            fields = self._record_fields
            if len(args) > len(fields):
                raise TypeError(f"{type(self).__name__}() takes {len(fields)} positional arguments "
                                f"but {len(args)} were given")
            for name, value in zip(fields, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
                setattr(self, name, value)
            for name, value in kwargs.items():
                if name not in fields:
                    raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
                setattr(self, name, value)
            missing = [name for name in fields[len(args):] if name not in kwargs and name in self._record_required]
            if missing:
                raise TypeError(f"{type(self).__name__}() missing required arguments: {', '.join(missing)}")
            post_init = getattr(self, "__post_init__", None)
            if post_init is not None:
                post_init()

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_fields)
        return f"{type(self).__qualname__}({values})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._record_fields)

    __hash__ = None  # type: ignore[assignment]  # as a non-frozen dataclass: equal by value, so not hashable


RecordT = TypeVar("RecordT", bound=Record)


def replace(record: RecordT, **changes: Any) -> RecordT:
    """A copy of ``record`` with ``changes``, as ``dataclasses.replace`` makes one of a dataclass."""
    values = {name: getattr(record, name) for name in record._record_fields}
    return type(record)(**(values | changes))
