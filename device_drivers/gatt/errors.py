"""Errors of the GATT codecs that the shared driver errors do not already name."""

from __future__ import annotations

from device_drivers.errors import DriverError


class UnencodableValue(DriverError, ValueError):
    """An encoder was given a value its characteristic cannot carry.

    Raised by the ``encode_*`` functions (used by simulators and tests), never by parsers.

    Attributes:
        field: the characteristic field that cannot hold the value.
        reason: why.
    """

    def __init__(self, reason: str, *, field: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
