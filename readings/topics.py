"""MQTT topics of the contract, built and parsed in one place.

| topic | direction |
|---|---|
| ``vitalgate/v1/gw/{gateway_id}/readings`` | gateway → central, QoS 1 |
| ``vitalgate/v1/gw/{gateway_id}/status`` | gateway → central, retained, also the will |
| ``vitalgate/v1/gw/{gateway_id}/events`` | gateway → central |
| ``vitalgate/v1/gw/{gateway_id}/ack`` | ingest → gateway, QoS 1 |
| ``vitalgate/v1/gw/{gateway_id}/cmd/{name}`` | central → gateway, QoS 1 |
| ``vitalgate/v1/accepted/{partition}`` | ingest → alerts |
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from readings.errors import TopicError
from readings.model import ID_PATTERN

TOPIC_ROOT: Final = "vitalgate/v1"
DEFAULT_PARTITIONS: Final = 16
"""Alert workers own disjoint ranges of partitions; 16 lets up to 16 workers share the
load evenly, and is cheap to subscribe to in full for one worker."""

SERVICE_IDENTITY_PREFIX: Final = "vitalgate-"
"""Broker usernames (certificate CNs) starting with this belong to VitalGate's services,
never to a gateway: the broker's ACL (``deploy/mosquitto/acl``) grants them rights over
every gateway's topics. Compared case-insensitively."""
SERVICE_IDENTITIES: Final = ("vitalgate-ingest", "vitalgate-alerts", "vitalgate-api")
"""The service users of the shipped ACL: ingest (reads all readings, writes acks and
``accepted/``), the alert engine, and the dashboard/registry API (sends commands)."""


def is_reserved_gateway_id(gateway_id: str) -> bool:
    """The id is (or looks like) a service identity of the broker's ACL.

    Compared case-insensitively: Mosquitto matches usernames exactly, but a CA operator or
    an authentication plugin with a case-insensitive user table may not.
    """
    folded = gateway_id.casefold()
    return folded in SERVICE_IDENTITIES or folded.startswith(SERVICE_IDENTITY_PREFIX)


_ID_RE: Final = re.compile(ID_PATTERN)
_GROUP_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Channel(StrEnum):
    """What a topic carries."""

    READINGS = "readings"
    STATUS = "status"
    EVENTS = "events"
    ACK = "ack"
    COMMAND = "cmd"
    ACCEPTED = "accepted"


class Command(StrEnum):
    """Commands the clinic can send a gateway."""

    PAIR = "pair"
    UNPAIR = "unpair"
    SYNC_TIME = "sync_time"
    RELOAD_CONFIG = "reload_config"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic taken apart. Fields that do not apply to the channel are ``None``."""

    channel: Channel
    gateway_id: str | None = None
    command: Command | None = None
    partition: int | None = None


def _check_id(gateway_id: str) -> str:
    if not _ID_RE.match(gateway_id):
        raise TopicError(
            f"gateway id {gateway_id!r} is not allowed in a topic "
            "(letters, digits, '_' and '-', at most 64, starting with a letter or digit)"
        )
    return gateway_id


def gateway_topic(gateway_id: str, channel: Channel) -> str:
    """The topic of ``channel`` for one gateway (not for commands: see :func:`command_topic`)."""
    if channel in (Channel.COMMAND, Channel.ACCEPTED):
        raise TopicError(f"{channel} topics are built with their own function")
    return f"{TOPIC_ROOT}/gw/{_check_id(gateway_id)}/{channel.value}"


def readings_topic(gateway_id: str) -> str:
    """Where a gateway publishes batches of readings."""
    return gateway_topic(gateway_id, Channel.READINGS)


def status_topic(gateway_id: str) -> str:
    """Where a gateway keeps its retained status (also its will)."""
    return gateway_topic(gateway_id, Channel.STATUS)


def events_topic(gateway_id: str) -> str:
    """Where a gateway publishes events (paired, device error, …)."""
    return gateway_topic(gateway_id, Channel.EVENTS)


def ack_topic(gateway_id: str) -> str:
    """Where ingest acknowledges readings durably stored for a gateway."""
    return gateway_topic(gateway_id, Channel.ACK)


def command_topic(gateway_id: str, command: Command | str) -> str:
    """Where the clinic sends a gateway a command."""
    try:
        parsed = Command(command)
    except ValueError:
        raise TopicError(f"unknown command {command!r}") from None
    return f"{TOPIC_ROOT}/gw/{_check_id(gateway_id)}/cmd/{parsed.value}"


def command_filter(gateway_id: str) -> str:
    """Subscription filter for all commands to one gateway."""
    return f"{TOPIC_ROOT}/gw/{_check_id(gateway_id)}/cmd/+"


def accepted_topic(partition: int, partitions: int = DEFAULT_PARTITIONS) -> str:
    """Where ingest republishes validated readings of one partition for the alert engine."""
    if not 0 <= partition < partitions:
        raise TopicError(f"partition {partition} is outside 0..{partitions - 1}")
    return f"{TOPIC_ROOT}/accepted/{partition}"


ALL_READINGS_FILTER: Final = f"{TOPIC_ROOT}/gw/+/readings"
"""Subscription filter for every gateway's readings."""
ALL_STATUS_FILTER: Final = f"{TOPIC_ROOT}/gw/+/status"
ALL_EVENTS_FILTER: Final = f"{TOPIC_ROOT}/gw/+/events"
ALL_ACCEPTED_FILTER: Final = f"{TOPIC_ROOT}/accepted/+"


def shared_subscription(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: the broker splits messages among the group."""
    if not _GROUP_RE.match(group):
        raise TopicError(f"share group {group!r} must be 1-64 letters, digits, '_' or '-'")
    return f"$share/{group}/{topic_filter}"


def partition_for(patient_id: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """Stable partition of a patient: the same on every host, release and Python run.

    ``hash()`` is salted per process, so a digest is used instead.
    """
    digest = hashlib.blake2b(patient_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def parse_topic(topic: str) -> ParsedTopic:
    """Take a contract topic apart.

    Raises:
        TopicError: the topic is not one of the contract's, naming what is wrong.
    """
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} does not start with {prefix!r}")
    levels = topic[len(prefix) :].split("/")
    if levels[0] == "accepted" and len(levels) == 2:
        if not levels[1].isdigit():
            raise TopicError(f"partition {levels[1]!r} in {topic!r} is not a number")
        return ParsedTopic(channel=Channel.ACCEPTED, partition=int(levels[1]))
    if levels[0] != "gw" or len(levels) < 3:
        raise TopicError(f"topic {topic!r} is not a gateway or accepted topic")
    gateway_id = _check_id(levels[1])
    channel_text = levels[2]
    if channel_text == Channel.COMMAND.value:
        if len(levels) != 4:
            raise TopicError(f"command topic {topic!r} must end in cmd/<name>")
        try:
            command = Command(levels[3])
        except ValueError:
            raise TopicError(f"unknown command {levels[3]!r} in {topic!r}") from None
        return ParsedTopic(channel=Channel.COMMAND, gateway_id=gateway_id, command=command)
    if len(levels) != 3:
        raise TopicError(f"topic {topic!r} has extra levels")
    try:
        channel = Channel(channel_text)
    except ValueError:
        raise TopicError(f"unknown channel {channel_text!r} in {topic!r}") from None
    if channel is Channel.ACCEPTED:
        raise TopicError(f"topic {topic!r}: accepted topics are not per gateway")
    return ParsedTopic(channel=channel, gateway_id=gateway_id)
