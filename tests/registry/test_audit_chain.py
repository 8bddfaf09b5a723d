"""The audit log is append-only and hash-chained; tampering is found and named (both backends).

Tampering is done as an attacker with database access would: through a plain connection
without VitalGate's statement guard, with the append-only triggers disabled first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, delete, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from registry.audit import (
    AuditOutcome,
    AuditRewriteRefused,
    ChainHead,
    ChainProblemKind,
    chain_head,
    chain_links,
    recent_audit,
    record_audit,
    verify_audit_log,
    verify_chain,
)
from registry.db import alembic_config, create_engine_for, session_scope, upgrade
from registry.models import AuditRecord
from tests.registry.conftest import T0
from vitalgate.commands.audit import EXIT_TAMPERED, app

ROWS = 6


def _append(engine: Engine, count: int, *, actor: str = "dr-li") -> None:
    for index in range(count):
        with session_scope(engine) as session:
            record_audit(
                session,
                at=T0 + timedelta(seconds=index),
                actor=actor,
                actor_role="doctor",
                action="readings.read",
                target="/api/v1/patients/p-1/readings",
                patient_ids=["p-2", "p-1", "p-1"],
                detail={"kinds": "glucose", "index": index},
            )


@pytest.fixture
def chained(engine: Engine) -> Engine:
    _append(engine, ROWS)
    return engine


@pytest.fixture
def raw(registry_url: str, chained: Engine) -> Iterator[Engine]:
    """A plain engine on the same database, append-only triggers off (the attacker's)."""
    plain = create_engine(chained.url)
    with plain.begin() as connection:
        if plain.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_append_only_update"))
            connection.execute(text("DROP TRIGGER audit_log_append_only_delete"))
    yield plain
    plain.dispose()


def _problems(engine: Engine, anchor: ChainHead | None = None) -> list[tuple[str, int]]:
    with session_scope(engine, write=False) as session:
        return [(p.kind.value, p.seq) for p in verify_audit_log(session, anchor=anchor)]


def test_an_untouched_chain_verifies_with_contiguous_seq(chained: Engine) -> None:
    with session_scope(chained, write=False) as session:
        links = list(chain_links(session))
        head = chain_head(session)
        entries = recent_audit(session, limit=1)
    assert [link.seq for link in links] == list(range(1, ROWS + 1))
    assert head == ChainHead(seq=ROWS, row_hash=links[-1].row_hash)
    assert _problems(chained) == []
    assert entries[0].patient_ids == ("p-1", "p-2")
    assert entries[0].actor_role == "doctor"


def test_a_changed_row_is_named(chained: Engine, raw: Engine) -> None:
    with raw.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3"))
    assert _problems(chained) == [(ChainProblemKind.CONTENT_CHANGED.value, 3)]


def test_a_changed_and_rehashed_row_breaks_the_next_link(chained: Engine, raw: Engine) -> None:
    with session_scope(chained, write=False) as session:
        links = [link for link in chain_links(session) if link.seq == 3]
    link = links[0]
    from registry.audit import link_digest

    forged = link_digest(
        seq=3,
        at=link.at,
        actor="someone-else",
        actor_role=link.actor_role,
        action=link.action,
        target=link.target,
        patient_ids=link.patient_ids,
        outcome=link.outcome,
        detail=link.detail,
        prev_hash=link.prev_hash,
    )
    with raw.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET actor = 'someone-else', row_hash = :h WHERE seq = 3"),
            {"h": forged},
        )
    assert _problems(chained) == [(ChainProblemKind.LINK_BROKEN.value, 4)]


def test_a_deleted_row_is_named(chained: Engine, raw: Engine) -> None:
    with raw.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    assert _problems(chained) == [
        (ChainProblemKind.SEQUENCE_GAP.value, 3),
        (ChainProblemKind.LINK_BROKEN.value, 3),
    ]


def test_a_deleted_tail_is_found_through_the_head(chained: Engine, raw: Engine) -> None:
    with raw.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = :seq"), {"seq": ROWS})
    assert _problems(chained) == [(ChainProblemKind.TAIL_MISSING.value, ROWS)]


def test_an_inserted_row_is_named(chained: Engine, raw: Engine) -> None:
    """A row added behind the appender's back, even with a correct link and hash."""
    with session_scope(chained, write=False) as session:
        last = list(chain_links(session))[-1]
    from registry.audit import link_digest

    seq = last.seq + 1
    digest = link_digest(
        seq=seq,
        at=last.at,
        actor="intruder",
        actor_role=None,
        action="readings.read",
        target="x",
        patient_ids="[]",
        outcome="ok",
        detail="{}",
        prev_hash=last.row_hash,
    )
    with raw.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, actor_role, action, target, patient_ids,"
                " outcome, detail, prev_hash, row_hash) VALUES (:seq, :at, 'intruder', NULL,"
                " 'readings.read', 'x', '[]', 'ok', '{}', :prev, :hash)"
            ),
            {
                "seq": seq,
                "at": last.at if raw.dialect.name == "postgresql" else str(last.at)[:26],
                "prev": last.row_hash,
                "hash": digest,
            },
        )
    assert _problems(chained) == [(ChainProblemKind.BEYOND_HEAD.value, seq)]


def test_a_rebuilt_chain_is_caught_by_a_recorded_anchor(chained: Engine, raw: Engine) -> None:
    with session_scope(chained, write=False) as session:
        anchor = chain_head(session)
    assert anchor is not None
    # The attacker rewrites row 2 and rebuilds every later link and the head consistently.
    with raw.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'forged' WHERE seq = 2"))
    from registry.audit import link_digest

    with session_scope(chained, write=False) as session:
        links = list(chain_links(session))
    previous = links[0].row_hash
    with raw.begin() as connection:
        for link in links[1:]:
            digest = link_digest(
                seq=link.seq,
                at=link.at,
                actor=link.actor,
                actor_role=link.actor_role,
                action=link.action,
                target=link.target,
                patient_ids=link.patient_ids,
                outcome=link.outcome,
                detail=link.detail,
                prev_hash=previous,
            )
            connection.execute(
                text("UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE seq = :s"),
                {"p": previous, "h": digest, "s": link.seq},
            )
            previous = digest
        connection.execute(text("UPDATE audit_chain_head SET row_hash = :h"), {"h": previous})
    assert _problems(chained) == []  # internally consistent …
    assert _problems(chained, anchor) == [(ChainProblemKind.ANCHOR_MISSING.value, ROWS)]


def test_the_database_refuses_update_and_delete_of_audit_rows(chained: Engine) -> None:
    plain = create_engine(chained.url)  # no application guard: only the triggers stand
    try:
        for statement in (
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
        ):
            with pytest.raises(DBAPIError, match="append-only"), plain.begin() as connection:
                connection.execute(text(statement))
    finally:
        plain.dispose()
    assert _problems(chained) == []


def test_no_code_path_can_update_or_delete_audit_rows(chained: Engine) -> None:
    """Every engine VitalGate creates refuses the statements before they reach the database."""
    for statement in (
        update(AuditRecord).where(AuditRecord.seq == 1).values(actor="x"),
        delete(AuditRecord).where(AuditRecord.seq == 1),
    ):
        with pytest.raises(AuditRewriteRefused), session_scope(chained) as session:
            session.execute(statement)
    with session_scope(chained) as session:
        row = session.get(AuditRecord, 1)
        assert row is not None
        row.actor = "x"  # an ORM change flushes as UPDATE
        with pytest.raises(AuditRewriteRefused):
            session.flush()
        session.rollback()
    assert _problems(chained) == []


def test_concurrent_appenders_share_one_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def append(actor: str) -> None:
        try:
            _append(engine, 25, actor=actor)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=append, args=(f"user-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(engine, write=False) as session:
        assert [link.seq for link in chain_links(session)] == list(range(1, 76))
    assert _problems(engine) == []


def test_upgrading_chains_rows_written_before_the_chain_existed(registry_url: str) -> None:
    engine = create_engine_for(registry_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        with engine.begin() as connection:
            for index in range(3):
                connection.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, target, outcome, detail)"
                        " VALUES (:at, 'ops', 'gateway.add', :target, 'ok', '{}')"
                    ),
                    {
                        "at": T0 if engine.dialect.name == "postgresql" else str(T0)[:19],
                        "target": f"gw-{index}",
                    },
                )
        upgrade(engine)
        assert _problems(engine) == []
        _append(engine, 2)
        with session_scope(engine, write=False) as session:
            assert [link.seq for link in chain_links(session)] == [1, 2, 3, 4, 5]
        assert _problems(engine) == []
    finally:
        engine.dispose()


def test_verify_command_prints_the_head_and_names_tampered_rows(
    registry_url: str, chained: Engine, raw: Engine
) -> None:
    runner = CliRunner()
    intact = runner.invoke(app, ["verify", "--registry", registry_url])
    assert intact.exit_code == 0, intact.output
    with session_scope(chained, write=False) as session:
        head = chain_head(session)
    assert head is not None
    assert f"head {head.seq}:{head.row_hash}" in intact.output
    anchored = runner.invoke(
        app, ["verify", "--registry", registry_url, "--expect-head", f"{head.seq}:{head.row_hash}"]
    )
    assert anchored.exit_code == 0, anchored.output

    with raw.begin() as connection:
        connection.execute(text("UPDATE audit_log SET outcome = 'denied' WHERE seq = 4"))
        row_id = connection.execute(text("SELECT id FROM audit_log WHERE seq = 4")).scalar_one()
    tampered = runner.invoke(app, ["verify", "--registry", registry_url])
    assert tampered.exit_code == EXIT_TAMPERED
    assert f"TAMPERED row id={row_id} seq=4: content_changed" in tampered.output


def test_verify_refuses_a_malformed_anchor(registry_url: str, chained: Engine) -> None:
    result = CliRunner().invoke(
        app, ["verify", "--registry", registry_url, "--expect-head", "12:nothex"]
    )
    assert result.exit_code == 2
    assert "SEQ:HASH" in result.output


def test_pure_verifier_reports_a_missing_head() -> None:
    problems = verify_chain([], None)
    assert [p.kind for p in problems] == [ChainProblemKind.TAIL_MISSING]


def test_record_audit_refuses_a_naive_time_and_records_denials(engine: Engine) -> None:
    from registry.errors import InvalidRegistryInput

    with pytest.raises(InvalidRegistryInput), session_scope(engine) as session:
        record_audit(session, at=T0.replace(tzinfo=None), actor="a", action="x", target="t")
    with session_scope(engine) as session:
        seq = record_audit(
            session,
            at=T0,
            actor="dr-wang",
            actor_role="doctor",
            action="patient.read",
            target="/api/v1/patients/p-9",
            outcome=AuditOutcome.DENIED,
            patient_ids=["p-9"],
        )
    assert seq == 1
    assert _problems(engine) == []
