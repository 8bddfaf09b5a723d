"""Errors of the care registry: one root, typed subclasses that carry what was wrong.

Database driver errors never leave the package untranslated when they mean something an
operator can act on (a duplicate id, a device bound twice); they are raised as one of
these with ``raise ... from exc``.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every error raised by :mod:`registry`."""


class NotFound(RegistryError):
    """A record the operation needs does not exist.

    Attributes:
        entity: what kind of record (``"gateway"``, ``"patient"``, ``"device"``, ``"pairing"``).
        key: the id that was looked up.
    """

    def __init__(self, entity: str, key: str, message: str | None = None) -> None:
        super().__init__(message or f"{entity} {key!r} does not exist")
        self.entity = entity
        self.key = key


class AlreadyExists(RegistryError):
    """A record with this id exists already.

    Attributes:
        entity: what kind of record.
        key: the id that is taken.
    """

    def __init__(self, entity: str, key: str, message: str | None = None) -> None:
        super().__init__(message or f"{entity} {key!r} already exists")
        self.entity = entity
        self.key = key


class DeviceAlreadyBound(AlreadyExists):
    """The device has a current pairing with another patient; unbind it first.

    The other patient's id is deliberately not part of the message (it may end up in a
    terminal scroll-back or a ticket); ``vitalgate registry device list`` shows it to an
    operator who needs it.

    Attributes:
        device_id: the device.
        since: when the current pairing started, ISO 8601 UTC.
    """

    def __init__(self, device_id: str, since: str) -> None:
        super().__init__(
            "pairing",
            device_id,
            f"device {device_id!r} is bound to another patient since {since}: "
            "unbind it first (vitalgate registry device unbind)",
        )
        self.device_id = device_id
        self.since = since


class InvalidRegistryInput(RegistryError, ValueError):
    """An argument breaks a rule of the registry.

    Attributes:
        field: the argument or column (``"patient_id"``, ``"at"``, ``"time_zone"``, ``"url"``).
        problem: what is wrong with it, in words an operator can act on.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class MigrationError(RegistryError):
    """The database schema is missing, behind, ahead of this code, or failed to migrate.

    Attributes:
        problem: what is wrong and what to do about it.
        revision: the revision the database is at (``None`` when it has none).
    """

    def __init__(self, problem: str, *, revision: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.revision = revision


class RegistryUnavailable(RegistryError):
    """The registry database cannot be reached or refused the connection (recoverable).

    Ingest keeps the batch unacknowledged and retries; an operator command exits 1.

    Attributes:
        problem: the driver's first line, without SQL or parameters.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"registry database unavailable: {problem}")
        self.problem = problem
