"""Errors of the gateway: one root, typed subclasses carrying what went wrong where.

Every error the gateway raises on purpose derives from :class:`GatewayError`, so a
supervisor can tell the gateway's known failure modes from bugs. Messages end with what
the operator can do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class GatewayError(Exception):
    """Root of every error raised by :mod:`gateway`."""


class ConfigError(GatewayError):
    """A setting is missing or out of range.

    Attributes:
        field: the setting, as it is named in the configuration.
        problem: what is wrong with it and how to fix it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class OutboxError(GatewayError):
    """The outbox database cannot be used.

    Attributes:
        path: the outbox database file.
        reason: what went wrong.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"outbox {path}: {reason}")
        self.path = path
        self.reason = reason


class OutboxCorrupt(OutboxError):
    """The outbox failed SQLite's ``integrity_check`` (or is not a database at all).

    The gateway refuses to start on it: publishing from a damaged outbox could lose or
    duplicate readings without anyone noticing.

    Attributes:
        check_output: what ``PRAGMA integrity_check`` (or SQLite, when the file could not
            even be read) reported, one problem per line.
    """

    def __init__(self, path: Path, check_output: str) -> None:
        first_lines = "\n".join(check_output.splitlines()[:10])
        super().__init__(
            path,
            "failed its integrity check; the gateway will not start on a damaged outbox. "
            f"Stop the gateway, move {path} (and its -wal/-shm files) aside, try "
            f"`sqlite3 {path} .recover` to save the readings not yet acknowledged, then "
            f"restart with an empty outbox. SQLite reported:\n{first_lines}",
        )
        self.check_output = check_output


class OutboxFull(OutboxError):
    """The outbox reached its hard ceiling: even clinical readings are refused.

    Nothing of the refused call was stored and the device cursor did not move, so the
    caller must leave the readings on the device (stop downloading) and announce the
    condition; they will be fetched again once the backlog drains.

    Attributes:
        used_bytes: space the outbox occupies now.
        ceiling_bytes: the hard ceiling (quota plus the reserve kept for clinical readings).
        refused: how many readings of the call were not stored.
    """

    def __init__(self, path: Path, *, used_bytes: int, ceiling_bytes: int, refused: int) -> None:
        super().__init__(
            path,
            f"full ({used_bytes} of {ceiling_bytes} bytes): {refused} reading(s) were not "
            "stored and stay on the device. The broker or ingest has not acknowledged "
            "readings for a long time: check the gateway's connection, or raise the quota.",
        )
        self.used_bytes = used_bytes
        self.ceiling_bytes = ceiling_bytes
        self.refused = refused


class PublisherError(GatewayError):
    """The publisher stopped working (its thread failed, or it was used wrongly)."""


class SettingsError(ConfigError):
    """The gateway's configuration file (or environment) holds invalid settings.

    Attributes:
        path: the configuration file, as given.
        problems: every ``(key path, problem)`` found, e.g. ``("mqtt.url", "…")``;
            :attr:`field` and :attr:`problem` are the first of them.
    """

    def __init__(self, path: str, problems: Sequence[tuple[str, str]]) -> None:
        GatewayError.__init__(self, "\n".join(f"{path}: {key}: {text}" for key, text in problems))
        self.path = path
        self.problems = tuple(problems)
        self.field, self.problem = self.problems[0] if self.problems else ("(file)", "invalid")


class PairingError(GatewayError):
    """A device could not be paired or unpaired.

    Attributes:
        device_id: the device concerned, when its identity is known.
        reason: what went wrong and what to do about it.
    """

    def __init__(self, reason: str, *, device_id: str | None = None) -> None:
        super().__init__(f"{device_id}: {reason}" if device_id else reason)
        self.device_id = device_id
        self.reason = reason


class DeviceSessionError(GatewayError):
    """A device session cannot go on with its device.

    Attributes:
        device_id: the paired device.
        reason: what went wrong.
    """

    def __init__(self, device_id: str, reason: str) -> None:
        super().__init__(f"{device_id}: {reason}")
        self.device_id = device_id
        self.reason = reason


class IdentityMismatch(DeviceSessionError):
    """The device at a paired address says it is another device.

    A security event over BLE (a replaced or spoofed device must not feed readings into
    the paired patient's record); on a shared serial cable, another household member's
    meter.

    Attributes:
        address: the transport address (BLE address or serial port).
        found_device_id: the identity the device reported.
    """

    def __init__(self, device_id: str, *, address: str, found_device_id: str) -> None:
        super().__init__(
            device_id,
            f"the device at {address} identifies as {found_device_id}, not as the paired "
            "device; its readings are not accepted. Unpair and pair again if the device "
            "was replaced.",
        )
        self.address = address
        self.found_device_id = found_device_id
