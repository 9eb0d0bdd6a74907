"""Record: the package's hand-written stand-in for ``@dataclass`` (cheaper at import). It must behave like the
dataclasses it replaced wherever the package relies on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from stop_campaign.records import Record


class Point(Record):
    x: int
    y: int = 0
    label: str | None = None
    kind: ClassVar[str] = "point"  # a class constant, not a field


class Point3(Point):
    z: int = 0


class Checked(Record):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclass
class PointDataclass:
    x: int
    y: int = 0
    label: str | None = None


def test_fields_positional_keyword_and_defaults_as_a_dataclass():
    for make in (Point, PointDataclass):
        point = make(1, label="a")
        assert (point.x, point.y, point.label) == (1, 0, "a")
        assert make(1, 2).y == 2
    assert Point._record_fields == ("x", "y", "label")


def test_repr_and_equality_by_value_within_one_class():
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label=None)"
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != Point3(1, 2)  # another class is never equal, as with dataclasses
    with pytest.raises(TypeError):
        hash(Point(1))  # equal by value and mutable: unhashable, as a non-frozen dataclass


def test_subclasses_add_fields_after_the_inherited_ones():
    point = Point3(1, 2, "b", 3)
    assert (point.x, point.y, point.label, point.z) == (1, 2, "b", 3)
    assert repr(point) == "Point3(x=1, y=2, label='b', z=3)"


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {}, "missing required arguments: x"),
    ((1, 2, "a", 4), {}, "takes 3 positional arguments but 4 were given"),
    ((1,), {"x": 2}, "got multiple values for argument 'x'"),
    ((1,), {"colour": "red"}, "got an unexpected keyword argument 'colour'"),
])
def test_wrong_arguments_raise_type_error_as_a_dataclass_would(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)
    with pytest.raises(TypeError):
        PointDataclass(*args, **kwargs)


def test_post_init_runs_after_the_fields_are_set():
    assert Checked(1).value == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_replace_copies_with_changes_as_dataclasses_replace():
    from stop_campaign.records import replace

    original = Point3(1, 2, "a", 3)
    changed = replace(original, y=5)
    assert changed == Point3(1, 5, "a", 3) and type(changed) is Point3
    assert original == Point3(1, 2, "a", 3)  # untouched
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        replace(original, w=1)


def test_a_mutable_default_is_refused_as_a_dataclass_refuses_it():
    with pytest.raises(ValueError, match="mutable default for field 'items'"):
        class Basket(Record):
            items: list[str] = []  # noqa: RUF012
