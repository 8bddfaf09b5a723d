"""Readings the API stored itself reach the alert engine as ingest's do.

A reading typed in on the portal or measured by a nurse at a visit is written to the store by
the API, not by ingest, so nothing would announce it on ``accepted/`` and the alert worker —
which hears only ``accepted/`` — would never judge it: a 2.5 mmol/L typed in by hand would
page no one. After storing such readings the API publishes them, in the wire contract's
envelope, on the patient's ``accepted/{partition}`` through its MQTT publisher (QoS 1, PUBACK
awaited), exactly where ingest would. Stored first, then announced, as ingest does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from dashboard_api.commands import CommandNotSent, CommandPublisher
from readings.codec import encode_envelope
from readings.model import Reading
from readings.topics import DEFAULT_PARTITIONS, accepted_topic, partition_for

logger = logging.getLogger(__name__)


def announce_stored(
    publisher: CommandPublisher | None,
    readings: Sequence[Reading],
    *,
    now: datetime,
    partitions: int = DEFAULT_PARTITIONS,
) -> bool:
    """Publish ``readings`` (already stored) on their patients' ``accepted/`` partitions.

    Returns whether every message was acknowledged by the broker. Without a publisher (an API
    with no broker) or when the broker does not answer, the readings stay stored and shown;
    the alert worker's catch-up from the store covers them when it next takes the partition,
    and the failure is logged so that operations can see it.
    """
    if not readings:
        return True
    if publisher is None:
        logger.warning("no broker: %d stored reading(s) not announced to alerting", len(readings))
        return False
    # An envelope holds one gateway's readings (the contract checks it): the API's readings
    # name their pseudo gateway (``manual-entry``, ``nurse-visit``).
    batches: dict[tuple[int, str], list[Reading]] = {}
    for reading in readings:
        key = (partition_for(reading.patient_id, partitions), reading.gateway_id)
        batches.setdefault(key, []).append(reading)
    sent = True
    for (partition, gateway_id), batch in sorted(batches.items()):
        try:
            publisher.publish(
                accepted_topic(partition, partitions), encode_envelope(gateway_id, now, batch)
            )
        except CommandNotSent as exc:
            logger.warning("stored readings not announced to alerting: %s", exc)
            sent = False
    return sent
