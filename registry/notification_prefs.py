"""Reading and changing a patient's notification preferences (tables:
:mod:`registry.notification_prefs_models`).

The quiet hours a patient sets are handed to the alert lifecycle as
:class:`alerts.lifecycle.QuietHours` (:func:`quiet_hours_of`); the lifecycle holds back only
P3/P4 notifications during them, so urgent alerts always come through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.orm import Session

from registry.care_lookup import find_patient
from registry.clock import Clock, utc_now
from registry.errors import InvalidRegistryInput
from registry.notification_prefs_models import NonUrgentChannel, NotificationPreference


@dataclass(frozen=True, slots=True)
class NotificationPrefs:
    """A patient's preferences; ``quiet_start``/``quiet_end`` are local times or both None."""

    patient_id: str
    channel: NonUrgentChannel
    quiet_start: time | None
    quiet_end: time | None
    updated_at: datetime | None
    updated_by: str | None


DEFAULT_CHANNEL = NonUrgentChannel.SMS
"""Patients in the family-doctor programme are reached by SMS unless they choose otherwise."""


class NotificationPrefsRepository:
    """One row per patient; absent means the defaults (SMS, no quiet hours)."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def get(self, patient_id: str) -> NotificationPrefs:
        """The patient's preferences (the defaults when none were set).

        Raises:
            NotFound: no such patient.
        """
        find_patient(self._session, patient_id)
        row = self._session.get(NotificationPreference, patient_id)
        if row is None:
            return NotificationPrefs(patient_id, DEFAULT_CHANNEL, None, None, None, None)
        return NotificationPrefs(
            patient_id,
            NonUrgentChannel(row.channel),
            row.quiet_start,
            row.quiet_end,
            row.updated_at,
            row.updated_by,
        )

    def set(
        self,
        patient_id: str,
        *,
        channel: NonUrgentChannel,
        quiet_start: time | None,
        quiet_end: time | None,
        by: str,
    ) -> NotificationPrefs:
        """Replace the patient's preferences.

        Raises:
            NotFound: no such patient.
            InvalidRegistryInput: only one end of the quiet hours, or both the same time.
        """
        find_patient(self._session, patient_id)
        if (quiet_start is None) != (quiet_end is None):
            raise InvalidRegistryInput("quiet_hours", "give both the start and the end")
        if quiet_start is not None and quiet_start == quiet_end:
            raise InvalidRegistryInput("quiet_hours", "the start and the end must differ")
        row = self._session.get(NotificationPreference, patient_id)
        if row is None:
            row = NotificationPreference(patient_id=patient_id)
            self._session.add(row)
        row.channel = channel.value
        row.quiet_start = quiet_start
        row.quiet_end = quiet_end
        row.updated_at = self._clock()
        row.updated_by = by
        self._session.flush()
        return self.get(patient_id)
