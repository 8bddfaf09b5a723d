"""The audit log: an append-only, hash-chained record of every access to the registry's data.

Every read or change of health data (an operator command, an API request, an export) adds
one row: who, acting in which role, what, which patients, when, and the outcome. A change
and its audit row are written in the same transaction, so neither exists without the other.
Refused attempts are recorded too (outcome ``rejected`` or ``denied``), in their own
transaction after the refused one was rolled back. The detail holds ids and arguments,
never health values.

The chain::

    row n:   seq = n, prev_hash = row_hash(n-1), row_hash = SHA-256(content(n) + prev_hash)
    head:    (seq, row_hash) of the newest row, in ``audit_chain_head``

* a changed row no longer matches its ``row_hash`` (or, if the hash was recomputed, the
  next row's ``prev_hash``);
* a deleted row leaves a gap in ``seq`` and a broken link; a deleted tail leaves the head
  pointing at a row that is gone;
* an inserted row needs a ``seq`` and a link that fit, which shifts every later row.

:func:`verify_chain` (a pure function over the rows in ``seq`` order) finds each of these
and names the row. Someone who can rewrite the whole database can rebuild a consistent chain;
what defeats that is an anchor kept elsewhere — ``vitalgate audit verify`` prints the head,
an operator records it with the backups, and ``--expect-head SEQ:HASH`` later proves the
chain still contains that exact row.

**Concurrent writers.** Appending reads the head with ``SELECT … FOR UPDATE`` (PostgreSQL)
or under SQLite's write lock (every registry writer begins ``IMMEDIATE``), so appenders take
turns on one row. The lock is taken as the transaction's *last* statement before commit
(:func:`record_audit` is called after the audited change), so it is held for the commit
alone — about one fsync: with PostgreSQL's durable commits of ~1 ms that is on the order of
a thousand audited requests per second per database, above what a clinic's API serves. The
alternative, unchained rows sealed later by a background job, would leave a window in which
rows are unprotected.

No code path issues UPDATE or DELETE on ``audit_log``: :func:`refuse_audit_rewrites` (installed
on every engine by :func:`registry.db.create_engine_for`) refuses such a statement before it
reaches the database, and the migration installs triggers that refuse it in the database.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeAlias, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.clock import aware_utc
from registry.errors import InvalidRegistryInput, RegistryError
from registry.models import AuditChainHead, AuditRecord

AuditDetail: TypeAlias = Mapping[str, str | int | float | bool | None]

MAX_ACTOR_LENGTH: Final = 128
MAX_TARGET_LENGTH: Final = 255
MAX_ROLE_LENGTH: Final = 32

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first row: there is no row before it."""

CHAIN_HEAD_ID: Final = 1

AUDIT_MIGRATION_OPTION: Final = "vitalgate_audit_migration"
"""Execution option that lets the migration chaining pre-existing rows update them, once."""

_REWRITE_STATEMENT: Final = re.compile(
    r"^\s*(UPDATE\s+\"?audit_log\"?|DELETE\s+FROM\s+\"?audit_log\"?)(\s|$)", re.IGNORECASE
)


class AuditOutcome(StrEnum):
    """How an audited action ended."""

    OK = "ok"
    REJECTED = "rejected"
    """Refused (bad input, conflict); nothing was changed."""
    DENIED = "denied"
    """Refused because the actor may not do it (not their patient, forbidden action)."""


class AuditRewriteRefused(RegistryError):
    """Something tried to UPDATE or DELETE audit rows; the log is append-only."""

    def __init__(self, statement: str) -> None:
        super().__init__(
            f"refused {statement.split(None, 1)[0].upper()} on audit_log: the audit log is "
            "append-only"
        )
        self.statement = statement


class AuditChainBroken(RegistryError):
    """The chain cannot be extended (its head row is gone): audited actions must stop."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    target: str
    patient_ids: tuple[str, ...]
    outcome: AuditOutcome
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What the hash of one audit row covers, as stored (the unit of :func:`verify_chain`)."""

    id: int
    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    target: str
    patient_ids: str
    outcome: str
    detail: str
    prev_hash: str
    row_hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The chain's newest link as the head row records it."""

    seq: int
    row_hash: str


class ChainProblemKind(StrEnum):
    """What :func:`verify_chain` found wrong."""

    CONTENT_CHANGED = "content_changed"
    """The row's content no longer hashes to its ``row_hash``."""
    LINK_BROKEN = "link_broken"
    """The row's ``prev_hash`` is not the previous row's ``row_hash``: a row before it was
    changed and rehashed, removed or inserted."""
    SEQUENCE_GAP = "sequence_gap"
    """Rows are missing before this one (deleted)."""
    SEQUENCE_REPEATED = "sequence_repeated"
    """Two rows claim the same place (inserted)."""
    TAIL_MISSING = "tail_missing"
    """The head names a row that is not there: the newest rows were deleted."""
    BEYOND_HEAD = "beyond_head"
    """Rows after the head's row: appended without the appender's lock (inserted)."""
    HEAD_MISMATCH = "head_mismatch"
    """The head's hash differs from the row it names."""
    ANCHOR_MISSING = "anchor_missing"
    """The row recorded as an anchor (``--expect-head``) is gone or differs."""


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One finding of :func:`verify_chain`, naming the row (``id`` and ``seq``)."""

    kind: ChainProblemKind
    seq: int
    row_id: int | None
    message: str

    def __str__(self) -> str:
        row = (
            f"row id={self.row_id} seq={self.seq}"
            if self.row_id is not None
            else (f"seq={self.seq}")
        )
        return f"{row}: {self.kind.value}: {self.message}"


class LinkContent(TypedDict):
    """What :func:`link_digest` covers: every column of a row but its ids and its own hash."""

    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    target: str
    patient_ids: str
    outcome: str
    detail: str
    prev_hash: str


_HASHED_FIELDS: Final = tuple(LinkContent.__annotations__)
"""The keys of :class:`LinkContent`: the columns a stored row is checked on."""


def canonical_time(at: datetime) -> str:
    """The timestamp as hashed: UTC, microseconds, ISO 8601 (both backends store µs)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def link_digest(
    *,
    seq: int,
    at: datetime,
    actor: str,
    actor_role: str | None,
    action: str,
    target: str,
    patient_ids: str,
    outcome: str,
    detail: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) over a row's content and the previous row's hash."""
    content = json.dumps(
        [
            seq,
            canonical_time(at),
            actor,
            actor_role,
            action,
            target,
            patient_ids,
            outcome,
            detail,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _digest_of(link: ChainLink) -> str:
    return link_digest(**{name: getattr(link, name) for name in _HASHED_FIELDS})


def verify_chain(
    links: Iterable[ChainLink],
    head: ChainHead | None,
    *,
    anchor: ChainHead | None = None,
) -> list[ChainProblem]:
    """Every inconsistency of the chain, in ``seq`` order (empty: the chain is intact).

    Args:
        links: the rows, ordered by ``seq`` (streamed; the log can be large).
        head: the head row, ``None`` if there is none.
        anchor: a (seq, hash) recorded earlier, which must still be in the chain.
    """
    problems: list[ChainProblem] = []
    expected_seq = 1
    previous_hash = GENESIS_HASH
    last: ChainLink | None = None
    anchor_seen = anchor is None
    for link in links:
        if last is not None and link.seq == last.seq:
            problems.append(
                ChainProblem(
                    ChainProblemKind.SEQUENCE_REPEATED,
                    link.seq,
                    link.id,
                    f"seq {link.seq} is also row id={last.id}",
                )
            )
        elif link.seq > expected_seq:
            problems.append(
                ChainProblem(
                    ChainProblemKind.SEQUENCE_GAP,
                    link.seq,
                    link.id,
                    f"rows seq {expected_seq}..{link.seq - 1} are missing",
                )
            )
        if link.prev_hash != previous_hash:
            problems.append(
                ChainProblem(
                    ChainProblemKind.LINK_BROKEN,
                    link.seq,
                    link.id,
                    f"prev_hash {link.prev_hash[:12]}… is not the previous row's hash "
                    f"{previous_hash[:12]}…",
                )
            )
        computed = _digest_of(link)
        if computed != link.row_hash:
            problems.append(
                ChainProblem(
                    ChainProblemKind.CONTENT_CHANGED,
                    link.seq,
                    link.id,
                    f"content hashes to {computed[:12]}…, stored row_hash {link.row_hash[:12]}…",
                )
            )
        if anchor is not None and link.seq == anchor.seq:
            anchor_seen = True
            if link.row_hash != anchor.row_hash or computed != anchor.row_hash:
                problems.append(
                    ChainProblem(
                        ChainProblemKind.ANCHOR_MISSING,
                        link.seq,
                        link.id,
                        f"the anchor recorded hash {anchor.row_hash[:12]}… for this seq",
                    )
                )
        if head is not None and link.seq > head.seq:
            problems.append(
                ChainProblem(
                    ChainProblemKind.BEYOND_HEAD,
                    link.seq,
                    link.id,
                    f"the head is at seq {head.seq}",
                )
            )
        expected_seq = link.seq + 1
        previous_hash = link.row_hash
        last = link
    if anchor is not None and not anchor_seen:
        problems.append(
            ChainProblem(
                ChainProblemKind.ANCHOR_MISSING, anchor.seq, None, "no row has the anchor's seq"
            )
        )
    if head is not None:
        if (last is None and head.seq > 0) or (last is not None and last.seq < head.seq):
            problems.append(
                ChainProblem(
                    ChainProblemKind.TAIL_MISSING,
                    head.seq,
                    None,
                    f"the head names seq {head.seq}, the newest row is "
                    f"{'none' if last is None else last.seq}",
                )
            )
        elif last is not None and last.seq == head.seq and last.row_hash != head.row_hash:
            problems.append(
                ChainProblem(
                    ChainProblemKind.HEAD_MISMATCH,
                    head.seq,
                    last.id,
                    f"head hash {head.row_hash[:12]}… differs from the row's {last.row_hash[:12]}…",
                )
            )
    else:
        problems.append(
            ChainProblem(
                ChainProblemKind.TAIL_MISSING,
                0 if last is None else last.seq,
                None if last is None else last.id,
                "the chain head row is missing",
            )
        )
    return problems


def parse_anchor(text: str) -> ChainHead:
    """``SEQ:HASH`` as printed by ``vitalgate audit verify``.

    Raises:
        InvalidRegistryInput: not of that form.
    """
    seq_text, _, digest = text.strip().partition(":")
    if not seq_text.isdigit() or re.fullmatch(r"[0-9a-f]{64}", digest) is None:
        raise InvalidRegistryInput("expect_head", "must be SEQ:HASH (a number, 64 hex digits)")
    return ChainHead(seq=int(seq_text), row_hash=digest)


def os_actor() -> str:
    """The operating-system user running this process (the default actor of a command)."""
    try:
        return getpass.getuser()
    except OSError:
        # No login name and no passwd entry (a container with an arbitrary uid).
        return f"uid:{os.getuid()}"


def record_audit(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: AuditOutcome = AuditOutcome.OK,
    detail: AuditDetail | None = None,
    actor_role: str | None = None,
    patient_ids: Sequence[str] = (),
) -> int:
    """Append an audit row to the session's transaction; call it after the audited change.

    Args:
        session: the transaction that makes (or made) the change being audited.
        at: when (timezone-aware).
        actor: who: an operating-system user or an account name.
        action: dotted verb, e.g. ``"device.bind"`` or ``"readings.read"``.
        target: the id acted on (or the route).
        outcome: whether it was done.
        detail: the arguments (ids and labels; never health values).
        actor_role: the role the actor acted in, if any.
        patient_ids: every patient whose data the action read or changed.

    Returns:
        The row's ``seq`` in the chain.

    Raises:
        InvalidRegistryInput: empty or over-long actor, role or target, or a naive ``at``.
    """
    if not actor.strip() or len(actor) > MAX_ACTOR_LENGTH:
        raise InvalidRegistryInput("actor", f"must be 1 to {MAX_ACTOR_LENGTH} characters")
    if len(target) > MAX_TARGET_LENGTH:
        raise InvalidRegistryInput("target", f"must be at most {MAX_TARGET_LENGTH} characters")
    if actor_role is not None and not 0 < len(actor_role) <= MAX_ROLE_LENGTH:
        raise InvalidRegistryInput("actor_role", f"must be 1 to {MAX_ROLE_LENGTH} characters")
    when = aware_utc(at, "at")
    patients = json.dumps(sorted(set(patient_ids)), ensure_ascii=False, separators=(",", ":"))
    detail_text = json.dumps(dict(detail or {}), sort_keys=True, ensure_ascii=False)
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == CHAIN_HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise AuditChainBroken(
            "the audit chain's head row is missing: nothing can be audited, so nothing is "
            "done; run `vitalgate audit verify` and restore the registry from a backup"
        )
    seq = head.seq + 1
    content: LinkContent = {
        "seq": seq,
        "at": when,
        "actor": actor,
        "actor_role": actor_role,
        "action": action,
        "target": target,
        "patient_ids": patients,
        "outcome": outcome.value,
        "detail": detail_text,
        "prev_hash": head.row_hash,
    }
    row_hash = link_digest(**content)
    session.add(AuditRecord(**content, row_hash=row_hash))
    head.seq = seq
    head.row_hash = row_hash
    session.flush()
    return seq


def chain_links(session: Session, *, batch: int = 5_000) -> Iterator[ChainLink]:
    """Every audit row in ``seq`` order, streamed in batches."""
    rows = session.execute(
        select(AuditRecord)
        .order_by(AuditRecord.seq, AuditRecord.id)
        .execution_options(yield_per=batch)
    ).scalars()
    try:
        yield from (_link_of(row) for row in rows)
    finally:
        # A consumer that stops early must not leave a server-side cursor open.
        rows.close()


def _link_of(row: AuditRecord) -> ChainLink:
    return ChainLink(
        id=row.id,
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_role=row.actor_role,
        action=row.action,
        target=row.target,
        patient_ids=row.patient_ids,
        outcome=row.outcome,
        detail=row.detail,
        prev_hash=row.prev_hash,
        row_hash=row.row_hash,
    )


def chain_head(session: Session) -> ChainHead | None:
    """The head row (``seq`` 0 before the first audit row), ``None`` if it was deleted."""
    head = session.get(AuditChainHead, CHAIN_HEAD_ID)
    return None if head is None else ChainHead(seq=head.seq, row_hash=head.row_hash)


def verify_audit_log(session: Session, *, anchor: ChainHead | None = None) -> list[ChainProblem]:
    """:func:`verify_chain` over the registry's audit log."""
    return verify_chain(chain_links(session), chain_head(session), anchor=anchor)


def recent_audit(session: Session, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` audit rows, newest first."""
    rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit))
    return [
        AuditEntry(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            actor_role=row.actor_role,
            action=row.action,
            target=row.target,
            patient_ids=tuple(json.loads(row.patient_ids)),
            outcome=AuditOutcome(row.outcome),
            detail=json.loads(row.detail),
        )
        for row in rows
    ]


def refuse_audit_rewrites(
    connection: Any,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    _context: Any,
    _executemany: bool,
) -> None:
    """SQLAlchemy ``before_cursor_execute`` hook: no UPDATE or DELETE of audit rows.

    Raises:
        AuditRewriteRefused: the statement would rewrite the audit log.
    """
    if _REWRITE_STATEMENT.match(statement) and not connection.get_execution_options().get(
        AUDIT_MIGRATION_OPTION
    ):
        raise AuditRewriteRefused(statement)
