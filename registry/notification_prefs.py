"""Reading and changing a patient's notification preferences (tables:
:mod:`registry.notification_prefs_models`).

The escalation worker reads them when a step runs (:meth:`NotificationPrefsRepository.
message_prefs`, as :class:`alerts.escalation_policy.MessagePrefs`): the channel and quiet
hours shape only P3/P4 messages to the patient and family — held to the end of the quiet
hours, not dropped — so urgent alerts always come through and the doctor's inbox is told at
once whatever the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.orm import Session

from alerts.escalation_policy import Channel, MessagePrefs, QuietHours
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


_CHANNELS: dict[NonUrgentChannel, Channel | None] = {
    NonUrgentChannel.SMS: Channel.SMS,
    NonUrgentChannel.WECHAT: Channel.WECHAT,
    NonUrgentChannel.NONE: None,
}


def quiet_hours_of(prefs: NotificationPrefs, time_zone: str) -> QuietHours | None:
    """The patient's quiet hours in their zone (``patients.time_zone``), or None if unset."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    return QuietHours(prefs.quiet_start, prefs.quiet_end, time_zone)


def message_prefs_of(prefs: NotificationPrefs, time_zone: str) -> MessagePrefs:
    """The preferences as the escalation policy takes them (``none``: no channel)."""
    return MessagePrefs(_CHANNELS[prefs.channel], quiet_hours_of(prefs, time_zone))


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

    def message_prefs(self, patient_id: str) -> MessagePrefs:
        """The patient's preferences with their zone, for the escalation worker.

        Raises:
            NotFound: no such patient.
        """
        zone = find_patient(self._session, patient_id).time_zone
        return message_prefs_of(self.get(patient_id), zone)

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
