"""Data sufficiency: every figure either has enough data behind it or says why not.

A summary never prints a number that the data cannot support (a mean of two readings
shown as "the 7-day home mean"). Each figure is a :data:`Figure`: either
:class:`Sufficient` holding the value, or :class:`Insufficient` saying what was missing,
how much there was and how much the rule needs. Consumers match on the type::

    match summary.mean_mmol_l:
        case Sufficient(value):
            ...
        case Insufficient(reason, have, need):
            ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Sufficient(Generic[T]):
    """A figure computed from enough data."""

    value: T


@dataclass(frozen=True, slots=True)
class Insufficient:
    """A figure withheld: the data do not meet its sufficiency rule.

    Attributes:
        reason: what is missing, in words a clinician can act on (English; the pages
            translate by ``reason`` text key, so keep these stable).
        have: how much there is, in the unit of the rule (readings, days, % wear).
        need: the minimum the rule asks for, in the same unit.
    """

    reason: str
    have: float
    need: float


Figure: TypeAlias = Sufficient[T] | Insufficient
"""A figure of a summary: a value, or why there is none."""


def require(have: float, need: float, reason: str, compute: Callable[[], T]) -> Figure[T]:
    """``Sufficient(compute())`` if ``have >= need``, else ``Insufficient`` (not computed)."""
    if have >= need:
        return Sufficient(compute())
    return Insufficient(reason, have, need)


def map_figure(figure: Figure[T], function: Callable[[T], U]) -> Figure[U]:
    """Apply ``function`` to a sufficient figure's value; pass an insufficient one through."""
    if isinstance(figure, Sufficient):
        return Sufficient(function(figure.value))
    return figure


def value_or_none(figure: Figure[T]) -> T | None:
    """The value of a sufficient figure, else ``None`` (for rules that only need a number)."""
    return figure.value if isinstance(figure, Sufficient) else None
