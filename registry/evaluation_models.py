"""Tables of the alert evaluator: who evaluates which partition, and how far it got.

Readings reach the evaluator on ``accepted/{partition}``; one patient's readings must be
evaluated in order by one worker, which an MQTT shared subscription cannot promise (it
hands messages round-robin). So each partition is *leased*: a worker holds it until
``expires_at`` and renews it while it lives; when a worker dies its leases run out and
another worker takes them, with ``epoch`` incremented so that anything the old holder still
writes can be recognised as stale (a fencing token).

``accepted/`` messages live in the broker's memory. The **watermark** records, per
partition, up to when the evaluator has evaluated what arrived; a worker that takes a
partition (at start, or from a dead worker) first catches up from the reading store for
the time since the watermark, so a broker restart while the evaluator was down cannot make
a reading escape evaluation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import Base

HOLDER_LENGTH = 128


class EvaluationLease(Base):
    """One partition's current holder."""

    __tablename__ = "evaluation_leases"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(HOLDER_LENGTH))
    epoch: Mapped[int] = mapped_column(Integer)
    """Incremented at every change of holder: a fencing token for the holder's writes."""
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class EvaluationWatermark(Base):
    """Up to when a partition's arrivals have been evaluated."""

    __tablename__ = "evaluation_watermarks"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    evaluated_through: Mapped[datetime]
    """Every reading that reached the evaluator before this instant has been evaluated."""
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(HOLDER_LENGTH))
