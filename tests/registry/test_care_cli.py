"""``vitalgate users`` and ``vitalgate care``: audited, refusals named, no secret recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
from sqlalchemy import select
from typer.testing import CliRunner

from registry.db import create_engine_for, session_scope
from registry.models import AuditRecord
from vitalgate.cli import app

runner = CliRunner()
PASSWORD = "a long enough passphrase"


def _run(url: str, *args: str, stdin: str | None = None) -> dict:  # type: ignore[type-arg]
    group, *rest = args
    result = runner.invoke(app, [group, "--registry", url, "--actor", "ops", *rest], input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_team_with_staff_contract_and_family_consent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    assert runner.invoke(app, ["registry", "--registry", url, "init"]).exit_code == 0
    _run(url, "registry", "patient", "add", "patient-0001", "--name", "王芳")
    user = _run(url, "users", "add", "dr.zhang", "--name", "张医生", "--role", "family_doctor")
    assert user["user"]["roles"] == ["family_doctor"]
    _run(url, "users", "passwd", "dr.zhang", "--password-stdin", stdin=PASSWORD + "\n")
    enrolled = _run(url, "users", "totp", "dr.zhang")
    assert pyotp.parse_uri(enrolled["otpauth_uri"]).name == "dr.zhang"
    assert enrolled["user"]["has_password"]
    assert enrolled["user"]["totp_enrolled"]
    _run(url, "care", "team", "add", "team-a", "--name", "一团队", "--organisation", "东城中心")
    _run(url, "care", "team", "member", "team-a", "dr.zhang", "--position", "doctor")
    _run(
        url,
        "care",
        "contract",
        "sign",
        "patient-0001",
        "--team",
        "team-a",
        "--package",
        "diabetes",
        "--starts",
        "2026-12-01",
    )
    _run(url, "users", "add", "wang.daughter", "--kind", "family", "--phone", "13800000002")
    _run(
        url, "care", "family", "link", "patient-0001", "wang.daughter", "--relationship", "daughter"
    )
    granted = _run(
        url,
        "care",
        "family",
        "grant",
        "patient-0001",
        "wang.daughter",
        "--scope",
        "view_readings",
        "--on-behalf-of",
        "patient-0001",
    )
    assert granted["consent"]["scopes"] == ["view_readings"]
    assert (
        _run(
            url,
            "care",
            "family",
            "revoke",
            "patient-0001",
            "wang.daughter",
            "--on-behalf-of",
            "patient-0001",
        )["revoked"]
        == 1
    )

    engine = create_engine_for(url)
    with session_scope(engine, write=False) as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        text = " ".join(f"{r.action} {r.detail}" for r in rows)
    engine.dispose()
    assert "user.passwd" in text
    assert "family.revoke" in text
    assert PASSWORD not in text
    assert enrolled["otpauth_uri"].split("secret=")[1].split("&")[0] not in text


def test_refusals_name_the_problem_and_are_audited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    runner.invoke(app, ["registry", "--registry", url, "init"])
    short = runner.invoke(
        app, ["users", "--registry", url, "passwd", "x.y", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 2
    assert "at least 12 characters" in short.output
    staff_without_role = runner.invoke(app, ["users", "--registry", url, "add", "dr.x"])
    assert staff_without_role.exit_code == 2
    assert "roles" in staff_without_role.output
    unknown_scope = runner.invoke(
        app,
        [
            "care",
            "--registry",
            url,
            "family",
            "grant",
            "p",
            "u",
            "--scope",
            "everything",
            "--on-behalf-of",
            "p",
        ],
    )
    assert unknown_scope.exit_code == 2
    engine = create_engine_for(url)
    with session_scope(engine, write=False) as session:
        outcomes = [r.outcome for r in session.scalars(select(AuditRecord)).all()]
    engine.dispose()
    assert outcomes.count("rejected") == 2
