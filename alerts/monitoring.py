"""Since when each kind of reading is expected from a patient: S1/S2's ``monitoring_since``.

"No blood pressure for 3 days" means something only once a cuff was there to measure it.
Monitoring of a kind starts when the patient's first device producing it was paired (the
pairing's ``valid_from``), and runs while some pairing of such a device lasts: a device
replaced by another continues the run, one unpaired with nothing else producing its kinds
ends the expectation. Which kinds a device produces is its profile's ``kinds``
(``device_drivers.profiles``, named by ``devices.profile``); a device whose profile is
unknown sets no expectation (nothing says what it measures).

:func:`monitoring_starts` is the pure decision; :func:`load_pairing_spans` reads its input
from the registry (the evaluator's :class:`~alerts.evaluator.RegistryPatientDirectory`
keeps it as long as the patient's profile, :data:`~alerts.evaluator.PROFILE_TTL`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from readings.model import Kind
from registry.clock import aware_utc
from registry.models import Device, DevicePairing

ProfileKinds = Callable[[str], frozenset[Kind]]
"""The kinds a device profile produces (empty for a profile not known)."""


@dataclass(frozen=True, slots=True)
class PairingSpan:
    """One pairing of a device to the patient: what it produces, from when to when."""

    kinds: frozenset[Kind]
    valid_from: datetime
    valid_to: datetime | None
    """None: the pairing is current."""


def monitoring_starts(pairings: Iterable[PairingSpan], now: datetime) -> dict[Kind, datetime]:
    """Per kind, the start of the unbroken run of pairings producing it that lasts at
    ``now``; a kind no pairing produces at ``now`` is absent (not expected).

    Pairings that overlap or touch (one ends when the next begins: a device replaced)
    make one run; a gap starts a new run at the next pairing.
    """
    by_kind: dict[Kind, list[PairingSpan]] = {}
    for pairing in pairings:
        if pairing.valid_from > now:
            continue  # not begun yet
        for kind in pairing.kinds:
            by_kind.setdefault(kind, []).append(pairing)
    starts: dict[Kind, datetime] = {}
    for kind, spans in by_kind.items():
        run_start: datetime | None = None
        run_end: datetime | None = None  # None while the run is open-ended
        for span in sorted(spans, key=lambda p: p.valid_from):
            joins = run_start is not None and (run_end is None or span.valid_from <= run_end)
            if not joins:
                run_start, run_end = span.valid_from, span.valid_to
            elif run_end is not None:
                run_end = None if span.valid_to is None else max(run_end, span.valid_to)
        if run_start is not None and (run_end is None or run_end > now):
            starts[kind] = run_start
    return starts


def shipped_profile_kinds() -> ProfileKinds:
    """:data:`ProfileKinds` over the profiles shipped in ``firmware_configs`` (read once)."""
    from device_drivers.profiles import load_profiles

    kinds = {profile.profile_id: frozenset(profile.kinds) for profile in load_profiles()}

    def of(profile_id: str) -> frozenset[Kind]:
        return kinds.get(profile_id, frozenset())

    return of


def load_pairing_spans(
    session: Session, patient_id: str, profile_kinds: ProfileKinds
) -> list[PairingSpan]:
    """Every pairing of the patient in the registry (history included), with its kinds."""
    rows = session.execute(
        select(DevicePairing.valid_from, DevicePairing.valid_to, Device.profile)
        .join(Device, Device.id == DevicePairing.device_id)
        .where(DevicePairing.patient_id == patient_id)
    ).all()
    return [
        PairingSpan(
            kinds=profile_kinds(profile) if profile is not None else frozenset(),
            valid_from=aware_utc(valid_from, "valid_from"),
            valid_to=None if valid_to is None else aware_utc(valid_to, "valid_to"),
        )
        for valid_from, valid_to, profile in rows
    ]
