"""Partition leases and watermarks of the alert evaluator (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from registry.evaluation import (
    advance_watermark,
    claim_partitions,
    release_partitions,
    still_holds,
    watermark,
    watermarks,
)
from tests.registry.conftest import T0

TTL = timedelta(seconds=30)
PARTITIONS = 8


def _parts(held: list) -> list[int]:  # type: ignore[type-arg]
    return [h.partition for h in held]


def test_a_lone_worker_takes_every_partition_and_renews(engine: Engine) -> None:
    first = claim_partitions(engine, holder="a", partitions=PARTITIONS, now=T0, ttl=TTL)
    assert _parts(first) == list(range(PARTITIONS))
    assert all(h.newly_acquired and h.epoch == 1 for h in first)
    again = claim_partitions(engine, holder="a", partitions=PARTITIONS, now=T0 + TTL / 2, ttl=TTL)
    assert _parts(again) == list(range(PARTITIONS))
    assert not any(h.newly_acquired for h in again)


def test_a_live_lease_is_never_taken(engine: Engine) -> None:
    claim_partitions(engine, holder="a", partitions=PARTITIONS, now=T0, ttl=TTL)
    other = claim_partitions(engine, holder="b", partitions=PARTITIONS, now=T0 + TTL / 2, ttl=TTL)
    assert other == []


def test_a_dead_workers_partitions_are_taken_over_with_a_new_epoch(engine: Engine) -> None:
    claim_partitions(engine, holder="a", partitions=PARTITIONS, now=T0, ttl=TTL)
    later = T0 + TTL + timedelta(seconds=1)
    taken = claim_partitions(engine, holder="b", partitions=PARTITIONS, now=later, ttl=TTL)
    assert _parts(taken) == list(range(PARTITIONS))
    assert all(h.epoch == 2 and h.newly_acquired for h in taken)
    assert not still_holds(engine, holder="a", partition=0, epoch=1)
    assert still_holds(engine, holder="b", partition=0, epoch=2)


def test_two_live_workers_share_the_partitions(engine: Engine) -> None:
    a = claim_partitions(engine, holder="a", partitions=PARTITIONS, now=T0, ttl=TTL)
    release_partitions(engine, holder="a", partitions=[p.partition for p in a[PARTITIONS // 2 :]])
    b = claim_partitions(engine, holder="b", partitions=PARTITIONS, now=T0, ttl=TTL)
    assert _parts(b) == list(range(PARTITIONS // 2, PARTITIONS))


def test_watermark_moves_forward_only_and_is_fenced(engine: Engine) -> None:
    (held, *_) = claim_partitions(engine, holder="a", partitions=2, now=T0, ttl=TTL)
    assert watermark(engine, 0) is None
    at = T0 + timedelta(minutes=5)
    assert advance_watermark(engine, partition=0, through=at, holder="a", epoch=held.epoch, now=at)
    assert not advance_watermark(
        engine, partition=0, through=T0, holder="a", epoch=held.epoch, now=at
    )
    assert watermark(engine, 0) == at
    # A worker that lost its lease (b took over after expiry) cannot move it.
    later = at + TTL * 3  # after the lease expired, and past the watermark
    claim_partitions(engine, holder="b", partitions=2, now=later, ttl=TTL)
    assert not advance_watermark(
        engine, partition=0, through=later, holder="a", epoch=held.epoch, now=later
    )
    assert watermarks(engine) == {0: at}
