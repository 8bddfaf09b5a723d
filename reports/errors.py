"""The one exception root of :mod:`reports`."""

from __future__ import annotations


class ReportsError(Exception):
    """Root of every error raised by :mod:`reports`."""


class InvalidPeriod(ReportsError, ValueError):
    """A period is empty, reversed, or has no time zone."""


class InvalidTarget(ReportsError, ValueError):
    """A target is malformed (unknown key, not a number, low not below high)."""
