"""The ingest worker's MQTT loop against a fake client (tests/infra/fake_mqtt.py).

The store and the registry are the real SQLite ones; only the broker is a stand-in, so
the worker's order of things (store, then acknowledge the MQTT message, then the
end-to-end ack to the gateway) is checked without a broker process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest.config import load_settings
from ingest.stores.sqlite_store import SqliteReadingStore
from ingest.worker import IngestConnectError, IngestWorker, open_worker
from readings.codec import (
    AckMessage,
    decode_envelope,
    decode_message,
    encode_envelope,
    encode_envelope_from_encoded,
    encode_reading,
    format_utc,
)
from readings.topics import (
    ALL_READINGS_FILTER,
    accepted_topic,
    ack_topic,
    partition_for,
    readings_topic,
    shared_subscription,
)
from registry.db import create_engine_for
from registry.models import QuarantinedReading
from tests.infra.fake_mqtt import FakeBroker, FakeClient
from tests.integration.ingest_helpers import Binding, make_readings, make_registry

WAIT_SECONDS = 10.0
BINDING = Binding("gw-1", "acme-glucose-0001", "patient-1")


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def urls(tmp_path: Path) -> tuple[str, str]:
    registry_url = make_registry(tmp_path / "registry.db", [BINDING])
    return f"sqlite:///{tmp_path / 'readings.db'}", registry_url


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def worker(urls: tuple[str, str], broker: FakeBroker) -> Iterator[IngestWorker]:
    store_url, registry_url = urls
    settings = load_settings(
        mqtt_url="mqtt://127.0.0.1:1",
        store_url=store_url,
        registry_url=registry_url,
        metrics_port=None,
        client_id="ingest-test-0",
    )
    started = open_worker(settings, client_factory=broker.factory)
    yield started
    started.close()


def test_a_message_is_acked_only_after_its_readings_are_stored(
    worker: IngestWorker, broker: FakeBroker, urls: tuple[str, str]
) -> None:
    worker.start()
    client = broker.connected("ingest-test-0")
    assert isinstance(client, FakeClient)
    assert client.filters == [ALL_READINGS_FILTER]  # the shared group's filter
    assert worker.subscription == shared_subscription("ingest", ALL_READINGS_FILTER)
    readings = make_readings(BINDING, 25)
    store = SqliteReadingStore(urls[0].removeprefix("sqlite:///"))
    stored_when_acked: list[int] = []
    ack = client.ack

    def ack_and_look(mid: int, qos: int) -> object:
        stored_when_acked.append(len(store.ids()))
        return ack(mid, qos)

    client.ack = ack_and_look  # type: ignore[method-assign]
    try:
        broker.inject(
            readings_topic("gw-1"), encode_envelope("gw-1", readings[0].received_at, readings)
        )
        _wait_for(lambda: bool(broker.messages(ack_topic("gw-1"))), "the end-to-end ack")

        acks = [
            decode_message(message.payload, AckMessage)
            for message in broker.messages(ack_topic("gw-1"))
        ]
        assert sorted(i for a in acks for i in a.ids) == sorted(r.id for r in readings)
        assert stored_when_acked == [25]  # the MQTT ack came after the store had them
        assert store.ids() == {reading.id for reading in readings}
        assert worker.metrics.messages_acked._value.get() == 1
    finally:
        store.close()


def test_an_undecodable_payload_is_quarantined_and_acked(
    worker: IngestWorker, broker: FakeBroker, urls: tuple[str, str]
) -> None:
    worker.start()
    broker.inject(readings_topic("gw-1"), b"{not json")
    client = broker.connected("ingest-test-0")
    assert isinstance(client, FakeClient)
    _wait_for(lambda: bool(client.acked), "the MQTT ack of the poison message")

    engine = create_engine_for(urls[1])
    try:
        with engine.connect() as connection:
            kept = connection.execute(select(func.count()).select_from(QuarantinedReading))
            assert kept.scalar_one() == 1
    finally:
        engine.dispose()
    assert not broker.messages(ack_topic("gw-1"))  # no ids to acknowledge end to end


def test_a_refused_connect_names_the_reason_and_what_to_do(
    worker: IngestWorker, broker: FakeBroker
) -> None:
    broker.refuse_connects = 1
    broker.refusal = "Bad user name or password"

    with pytest.raises(IngestConnectError) as caught:
        worker.start()

    assert caught.value.problem.startswith("broker refused the connection: Bad user name")
    assert "check the user name and password" in caught.value.problem


def test_accepted_forwards_each_reading_exactly_as_received(
    worker: IngestWorker, broker: FakeBroker
) -> None:
    """``accepted/`` carries each stored reading's bytes as the gateway sent them (here
    with a +08:00 offset and unusual spacing, which a re-encoding would normalise), in an
    envelope the contract decodes; a contract-breaking reading of the same envelope is
    quarantined and not forwarded."""
    worker.start()
    readings = make_readings(BINDING, 3)
    sent = [
        encode_reading(reading).replace(b'"measured_at":', b'"measured_at" :  ')
        for reading in readings
    ]
    local = readings[0].measured_at.astimezone(timezone(timedelta(hours=8)))
    stamp = format_utc(readings[0].measured_at).encode()
    sent[0] = sent[0].replace(stamp, local.isoformat(timespec="milliseconds").encode())
    bad = b'{"id": "not-an-id", "kind": "glucose"}'
    broker.inject(
        readings_topic("gw-1"),
        encode_envelope_from_encoded("gw-1", readings[0].received_at, [*sent, bad]),
    )
    topic = accepted_topic(partition_for(BINDING.patient_id, 16), 16)
    _wait_for(lambda: bool(broker.messages(topic)), "the accepted/ envelope")

    (message,) = broker.messages(topic)
    for raw in sent:
        assert raw in message.payload  # forwarded byte for byte
    assert bad not in message.payload
    forwarded = decode_envelope(message.payload)
    assert [reading.id for reading in forwarded.readings] == [r.id for r in readings]
    assert forwarded.readings == readings  # same readings once decoded


def test_one_end_to_end_ack_per_gateway_and_batch_except_messages_with_notices(
    urls: tuple[str, str], broker: FakeBroker
) -> None:
    """Messages of one gateway stored whole in one batch share one ack; a message with a
    quarantined reading keeps its own, whose notice's index is in its envelope."""
    store_url, registry_url = urls
    settings = load_settings(
        mqtt_url="mqtt://127.0.0.1:1",
        store_url=store_url,
        registry_url=registry_url,
        metrics_port=None,
        client_id="ingest-test-0",
        batch_max_delay_seconds=2.0,  # the three messages land in one batch
    )
    worker = open_worker(settings, client_factory=broker.factory)
    try:
        worker.start()
        readings = make_readings(BINDING, 12)
        first, second, third = readings[:5], readings[5:7], readings[7:]
        bad = b'{"kind": "glucose"}'
        sent_at = readings[0].received_at
        broker.inject(readings_topic("gw-1"), encode_envelope("gw-1", sent_at, first))
        broker.inject(
            readings_topic("gw-1"),
            encode_envelope_from_encoded(
                "gw-1", sent_at, [*(encode_reading(r) for r in second), bad]
            ),
        )
        broker.inject(readings_topic("gw-1"), encode_envelope("gw-1", sent_at, third))
        _wait_for(lambda: len(broker.messages(ack_topic("gw-1"))) >= 2, "the acks")
        time.sleep(0.2)  # nothing more comes
        acks = [decode_message(m.payload, AckMessage) for m in broker.messages(ack_topic("gw-1"))]
        assert len(acks) == 2
        (noticed,) = [ack for ack in acks if ack.quarantined]
        (merged,) = [ack for ack in acks if not ack.quarantined]
        assert noticed.ids == [r.id for r in second]
        assert [(n.index, n.id) for n in noticed.quarantined] == [(2, None)]
        assert sorted(merged.ids) == sorted(r.id for r in first + third)
    finally:
        worker.close()
