"""Topics are built and parsed by one module, and the two agree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readings.errors import TopicError
from readings.topics import (
    ALL_READINGS_FILTER,
    Channel,
    Command,
    ParsedTopic,
    accepted_topic,
    ack_topic,
    command_topic,
    events_topic,
    parse_topic,
    partition_for,
    readings_topic,
    shared_subscription,
    status_topic,
)

gateway_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)


def test_topics_of_the_design_table() -> None:
    assert readings_topic("gw-1") == "vitalgate/v1/gw/gw-1/readings"
    assert status_topic("gw-1") == "vitalgate/v1/gw/gw-1/status"
    assert events_topic("gw-1") == "vitalgate/v1/gw/gw-1/events"
    assert ack_topic("gw-1") == "vitalgate/v1/gw/gw-1/ack"
    assert command_topic("gw-1", Command.PAIR) == "vitalgate/v1/gw/gw-1/cmd/pair"
    assert accepted_topic(3) == "vitalgate/v1/accepted/3"
    assert shared_subscription("ingest", ALL_READINGS_FILTER) == (
        "$share/ingest/vitalgate/v1/gw/+/readings"
    )


@given(gateway_id=gateway_ids)
def test_build_then_parse(gateway_id: str) -> None:
    for build, channel in [
        (readings_topic, Channel.READINGS),
        (status_topic, Channel.STATUS),
        (events_topic, Channel.EVENTS),
        (ack_topic, Channel.ACK),
    ]:
        assert parse_topic(build(gateway_id)) == ParsedTopic(channel, gateway_id)
    for command in Command:
        assert parse_topic(command_topic(gateway_id, command)) == ParsedTopic(
            Channel.COMMAND, gateway_id, command=command
        )


@pytest.mark.parametrize(
    "gateway_id", ["", "gw/2", "gw+", "#", "-leading-dash", "x" * 65, "gw 1", "网关"]
)
def test_gateway_ids_that_would_break_a_topic_are_refused(gateway_id: str) -> None:
    with pytest.raises(TopicError, match="gateway id"):
        readings_topic(gateway_id)


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/gw/gw1/readings",
        "vitalgate/v2/gw/gw1/readings",
        "vitalgate/v1/gw/gw1/unknown",
        "vitalgate/v1/gw/gw1/readings/extra",
        "vitalgate/v1/gw/gw1/cmd/format_disk",
        "vitalgate/v1/gw/gw1/cmd",
        "vitalgate/v1/accepted/x",
        "vitalgate/v1/gw",
    ],
)
def test_foreign_topics_are_refused_with_a_reason(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_accepted_partition_round_trip_and_bounds() -> None:
    assert parse_topic(accepted_topic(15)) == ParsedTopic(Channel.ACCEPTED, partition=15)
    with pytest.raises(TopicError, match="partition"):
        accepted_topic(16)


@given(patient_id=st.text(min_size=1), partitions=st.integers(1, 64))
def test_partition_is_stable_and_in_range(patient_id: str, partitions: int) -> None:
    partition = partition_for(patient_id, partitions)
    assert 0 <= partition < partitions
    assert partition == partition_for(patient_id, partitions)


def test_partition_is_the_same_across_processes() -> None:
    # Python's hash() is salted per process: two interpreters with different seeds must
    # still agree, or alert workers would own different patients after a restart.
    script = (
        "from readings.topics import partition_for\n"
        "print([partition_for(f'p{i}') for i in range(50)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
