"""``vitalgate registry``: the operator commands, their output, exit codes and audit rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from registry.audit import AuditOutcome, os_actor, recent_audit
from registry.db import create_engine_for, head_revision, session_scope
from vitalgate.cli import app as vitalgate_app
from vitalgate.commands.registry import app

DEVICE = "OMRON-HEM_7361T-20031234"

runner = CliRunner()


def _run(url: str, *arguments: str, actor: str | None = "nurse.li") -> Result:
    options = ["--registry", url] + (["--actor", actor] if actor is not None else [])
    return runner.invoke(app, [*options, *arguments])


def _ok(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def _audit(url: str) -> list[tuple[str, str, str, AuditOutcome]]:
    engine = create_engine_for(url)
    try:
        with session_scope(engine, write=False) as session:
            entries = recent_audit(session)
    finally:
        engine.dispose()
    return [(e.actor, e.action, e.target, e.outcome) for e in reversed(entries)]


@pytest.fixture
def initialised(registry_url: str) -> str:
    _ok(_run(registry_url, "init"))
    return registry_url


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _ok(_run(url, "init"))
    return url


def test_init_creates_the_directory_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "vitalgate-data" / "registry.db"
    url = f"sqlite:///{path}"
    first = _ok(_run(url, "init"))
    assert first == {"registry": url, "revision": head_revision(), "previous_revision": None}
    assert path.is_file()
    second = _ok(_run(url, "init"))
    assert second["previous_revision"] == head_revision()
    assert [action for _, action, _, _ in _audit(url)] == ["registry.init", "registry.init"]


def test_init_does_not_print_the_password() -> None:
    result = _run("postgresql://admin:s3cret@127.0.0.1:1/registry?connect_timeout=2", "init")
    assert result.exit_code == 1
    assert "s3cret" not in result.output


def test_enrolling_a_patient_end_to_end(initialised: str) -> None:
    url = initialised
    gateway = _ok(_run(url, "gateway", "add", "gw-0001", "--label", "Wang household"))
    assert gateway["gateway"]["id"] == "gw-0001"
    assert gateway["gateway"]["active"] is True
    patient = _ok(_run(url, "patient", "add", "patient-0001", "--name", "Wang"))
    assert patient["patient"]["time_zone"] == "Asia/Shanghai"
    assert "Wang" not in json.dumps(patient)

    bound = _ok(
        _run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001")
    )
    assert bound["bound"]["device_id"] == DEVICE
    assert bound["bound"]["valid_to"] is None
    assert bound["changed"] is True
    assert bound["device_registered"] is True
    again = _ok(
        _run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001")
    )
    assert again["changed"] is False

    listed = _ok(_run(url, "device", "list"))
    assert listed["count"] == 1
    assert listed["data"][0]["patient_id"] == "patient-0001"

    unbound = _ok(_run(url, "device", "unbind", DEVICE))
    assert unbound["unbound"]["valid_to"] is not None
    assert _ok(_run(url, "device", "list"))["count"] == 0
    assert _ok(_run(url, "device", "list", "--history", "--gateway", "gw-0001"))["count"] == 1

    assert _audit(url) == [
        ("nurse.li", "registry.init", "registry", AuditOutcome.OK),
        ("nurse.li", "gateway.add", "gw-0001", AuditOutcome.OK),
        ("nurse.li", "patient.add", "patient-0001", AuditOutcome.OK),
        ("nurse.li", "device.bind", DEVICE, AuditOutcome.OK),
        ("nurse.li", "device.bind", DEVICE, AuditOutcome.OK),
        ("nurse.li", "device.list", "*", AuditOutcome.OK),
        ("nurse.li", "device.unbind", DEVICE, AuditOutcome.OK),
        ("nurse.li", "device.list", "*", AuditOutcome.OK),
        ("nurse.li", "device.list", "gw-0001", AuditOutcome.OK),
    ]


def test_refusals_print_one_line_exit_2_and_are_audited(sqlite_registry: str) -> None:
    url = sqlite_registry
    _ok(_run(url, "gateway", "add", "gw-0001"))
    _ok(_run(url, "patient", "add", "patient-0001"))
    _ok(_run(url, "patient", "add", "patient-0002"))

    _refused(_run(url, "gateway", "add", "gw-0001"), "gateway 'gw-0001' already exists")
    _refused(_run(url, "patient", "add", "patient-0001"), "patient 'patient-0001' already exists")
    _refused(_run(url, "gateway", "add", "gw/1"), "gateway_id: must be")
    _refused(
        _run(url, "patient", "add", "patient-0003", "--time-zone", "Mars/Olympus"),
        "unknown IANA time zone",
    )
    _refused(
        _run(url, "device", "bind", DEVICE, "--gateway", "gw-9", "--patient", "patient-0001"),
        "gateway 'gw-9' does not exist",
    )
    _refused(
        _run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-9"),
        "patient 'patient-9' does not exist",
    )
    _ok(_run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001"))
    other = _run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0002")
    _refused(other, "is bound to another patient")
    assert "patient-0001" not in other.stderr
    _refused(_run(url, "device", "unbind", "OMRON-HEM_7361T-1"), "does not exist")

    rejected = [(a, t) for _, a, t, outcome in _audit(url) if outcome is AuditOutcome.REJECTED]
    assert rejected == [
        ("gateway.add", "gw-0001"),
        ("patient.add", "patient-0001"),
        ("gateway.add", "gw/1"),
        ("patient.add", "patient-0003"),
        ("device.bind", DEVICE),
        ("device.bind", DEVICE),
        ("device.bind", DEVICE),
        ("device.unbind", "OMRON-HEM_7361T-1"),
    ]


def test_a_deactivated_gateway_refuses_new_bindings(sqlite_registry: str) -> None:
    url = sqlite_registry
    _ok(_run(url, "gateway", "add", "gw-0001"))
    _ok(_run(url, "patient", "add", "patient-0001"))
    assert _ok(_run(url, "gateway", "deactivate", "gw-0001"))["gateway"]["active"] is False
    _refused(
        _run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001"),
        "deactivated",
    )
    assert _ok(_run(url, "gateway", "activate", "gw-0001"))["gateway"]["active"] is True
    _ok(_run(url, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001"))
    _refused(_run(url, "gateway", "deactivate", "gw-9"), "gateway 'gw-9' does not exist")


def test_an_uninitialised_registry_exits_1(tmp_path: Path) -> None:
    result = _run(f"sqlite:///{tmp_path / 'registry.db'}", "gateway", "add", "gw-0001")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: the registry database is not initialised: run `vitalgate registry init`"
    )


def test_an_unreachable_registry_exits_1() -> None:
    url = "postgresql://postgres@127.0.0.1:1/registry?connect_timeout=2"
    result = _run(url, "gateway", "add", "gw-0001")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: registry database unavailable: ")
    assert len(result.stderr.splitlines()) == 1


def test_an_unsupported_url_exits_2() -> None:
    _refused(_run("mysql://root@127.0.0.1/registry", "init"), "unsupported database 'mysql'")


def test_an_over_long_actor_is_refused(sqlite_registry: str) -> None:
    _refused(_run(sqlite_registry, "gateway", "add", "gw-0001", actor="x" * 129), "actor")
    assert _ok(_run(sqlite_registry, "device", "list"))["count"] == 0
    assert [action for _, action, _, _ in _audit(sqlite_registry)] == [
        "registry.init",
        "device.list",
    ]


def test_the_registry_comes_from_the_environment_and_the_actor_from_the_os(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'env' / 'registry.db'}"
    environment = {"VITALGATE_REGISTRY_URL": url}
    _ok(runner.invoke(app, ["init"], env=environment))
    _ok(runner.invoke(app, ["gateway", "add", "gw-0001"], env=environment))
    assert _audit(url)[-1] == (os_actor(), "gateway.add", "gw-0001", AuditOutcome.OK)


def test_the_vitalgate_command_runs_the_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    result = runner.invoke(vitalgate_app, ["registry", "--registry", url, "init"])
    assert _ok(result)["revision"] == head_revision()
