"""``vitalgate users`` and ``vitalgate care``: accounts, teams, contracts, rota, family consent.

Examples::

    vitalgate users add dr.zhang --name 张医生 --role family_doctor
    vitalgate users passwd dr.zhang            # asks twice; or --password-stdin
    vitalgate users totp dr.zhang              # prints the otpauth:// URI to scan
    vitalgate users add wang.fang --kind patient --patient patient-0001 --phone 13800000001
    vitalgate users disable nurse.liu
    vitalgate care team add team-a --name 一团队 --organisation 东城社区卫生服务中心
    vitalgate care team member team-a dr.zhang --position doctor
    vitalgate care contract sign patient-0001 --team team-a --package diabetes --starts 2026-12-01
    vitalgate care rota add team-a dr.chen --from 2026-12-05T18:00+08:00 --to 2026-12-06T08:00+08:00
    vitalgate care family link patient-0001 wang.daughter --relationship daughter
    vitalgate care family grant patient-0001 wang.daughter --scope view_readings \
        --on-behalf-of wang.fang

Like ``vitalgate registry``, every command runs in one transaction with its audit row
(refusals are audited too), prints one JSON document, exits 2 on bad input and 1 when the
registry cannot be used. Passwords and TOTP secrets never appear in the audit.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Annotated, Any, Final

import pyotp
import typer
from sqlalchemy.orm import Session

from dashboard_api.security import hash_password
from registry.care import (
    AccountRepository,
    ContractRepository,
    FamilyRepository,
    RotaRepository,
    TeamRepository,
    parse_scopes,
)
from registry.care_models import AccountKind, Role, TeamPosition
from registry.errors import InvalidRegistryInput
from vitalgate.commands.registry import EXIT_REFUSED, _run
from vitalgate.commands.registry_options import registry_options

MIN_PASSWORD_LENGTH: Final = 12
"""MLPS level 3 asks for complex passwords; length is what makes a password hard to guess."""

users_app = typer.Typer(
    help="Accounts of staff, patients and family members.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app.callback()(registry_options)
care_app = typer.Typer(
    help="Care teams, contracts, the duty rota and family consent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
care_app.callback()(registry_options)
team_app = typer.Typer(help="Family-doctor teams and their members.")
contract_app = typer.Typer(help="Contracts (签约) of patients with teams.")
rota_app = typer.Typer(help="The on-call rota: duty doctors per team and period.")
family_app = typer.Typer(help="Family members and the consent patients give them.")
care_app.add_typer(team_app, name="team", no_args_is_help=True)
care_app.add_typer(contract_app, name="contract", no_args_is_help=True)
care_app.add_typer(rota_app, name="rota", no_args_is_help=True)
care_app.add_typer(family_app, name="family", no_args_is_help=True)


def _account_json(record: Any) -> dict[str, Any]:
    return {
        "username": record.username,
        "kind": record.kind.value,
        "roles": sorted(role.value for role in record.roles),
        "patient_id": record.patient_id,
        "active": record.active,
        "has_password": record.has_password,
        "totp_enrolled": record.totp_enrolled,
    }


def _aware(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRegistryInput(
            field, f"{text!r} is not a time such as 2026-12-05T18:00+08:00"
        ) from None
    if moment.utcoffset() is None:
        raise InvalidRegistryInput(field, f"{text!r} has no UTC offset")
    return moment


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    username: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    kind: Annotated[AccountKind, typer.Option(help="staff, patient or family.")] = (
        AccountKind.STAFF
    ),
    role: Annotated[list[Role] | None, typer.Option(help="Staff role (repeatable).")] = None,
    phone: Annotated[str | None, typer.Option(help="For SMS login links.")] = None,
    patient: Annotated[str | None, typer.Option(help="The patient a patient account is.")] = None,
    custodial: Annotated[
        bool, typer.Option(help="Created by staff for a patient who never logs in.")
    ] = False,
) -> None:
    """Create an account (staff then need `passwd` and `totp` before they can log in)."""

    def operation(session: Session) -> dict[str, Any]:
        record = AccountRepository(session).add(
            username,
            display_name=name or username,
            kind=kind,
            roles=role or (),
            phone=phone,
            patient_id=patient,
            custodial=custodial,
        )
        return {"user": _account_json(record)}

    _run(
        ctx,
        action="user.add",
        target=username,
        detail={"kind": kind.value, "roles": ",".join(sorted(r.value for r in role or ()))},
        operation=operation,
    )


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        typer.echo(f"error: password: must be at least {MIN_PASSWORD_LENGTH} characters", err=True)
        raise typer.Exit(EXIT_REFUSED)
    return password


@users_app.command("passwd")
def users_passwd(
    ctx: typer.Context,
    username: str,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input (scripts).")
    ] = False,
) -> None:
    """Set a staff member's password (argon2id); ends every session of the account."""
    password_hash = hash_password(_read_password(password_stdin))

    def operation(session: Session) -> dict[str, Any]:
        accounts = AccountRepository(session)
        accounts.set_password_hash(username, password_hash)
        return {"user": _account_json(accounts.get(username))}

    _run(ctx, action="user.passwd", target=username, detail={}, operation=operation)


@users_app.command("totp")
def users_totp(ctx: typer.Context, username: str) -> None:
    """Enrol a new TOTP second factor; prints the otpauth:// URI for the phone's app."""
    secret = pyotp.random_base32()

    def operation(session: Session) -> dict[str, Any]:
        accounts = AccountRepository(session)
        accounts.set_totp_secret(username, secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="VitalGate")
        return {"user": _account_json(accounts.get(username)), "otpauth_uri": uri}

    _run(ctx, action="user.totp", target=username, detail={}, operation=operation)


@users_app.command("disable")
def users_disable(ctx: typer.Context, username: str) -> None:
    """Disable an account; its sessions end at once."""

    def operation(session: Session) -> dict[str, Any]:
        accounts = AccountRepository(session)
        accounts.set_active(username, False)
        return {"user": _account_json(accounts.get(username))}

    _run(ctx, action="user.disable", target=username, detail={}, operation=operation)


@team_app.command("add")
def team_add(
    ctx: typer.Context,
    code: str,
    name: Annotated[str, typer.Option(help="The team's name.")],
    organisation: Annotated[str, typer.Option(help="Its health centre.")],
) -> None:
    """Create a family-doctor team."""

    def operation(session: Session) -> dict[str, Any]:
        TeamRepository(session).add(code, name=name, organisation=organisation)
        return {"team": {"code": code, "name": name, "organisation": organisation}}

    _run(ctx, action="team.add", target=code, detail={}, operation=operation)


@team_app.command("member")
def team_member(
    ctx: typer.Context,
    code: str,
    username: str,
    position: Annotated[TeamPosition, typer.Option(help="doctor, nurse or lead.")],
    end: Annotated[bool, typer.Option(help="End the membership instead.")] = False,
) -> None:
    """Add a staff member to a team (or end their membership)."""

    def operation(session: Session) -> dict[str, Any]:
        teams = TeamRepository(session)
        if end:
            return {"ended": teams.end_member(code, username)}
        teams.add_member(code, username, position)
        return {"member": {"team": code, "username": username, "position": position.value}}

    _run(
        ctx,
        action="team.member_end" if end else "team.member_add",
        target=code,
        detail={"username": username, "position": position.value},
        operation=operation,
    )


@contract_app.command("sign")
def contract_sign(
    ctx: typer.Context,
    patient_id: str,
    team: Annotated[str, typer.Option(help="The team's code.")],
    package: Annotated[str, typer.Option(help="Service package (basic, diabetes …).")],
    starts: Annotated[str, typer.Option(help="First day (YYYY-MM-DD, the patient's date).")],
) -> None:
    """Contract a patient with a team."""

    def operation(session: Session) -> dict[str, Any]:
        record = ContractRepository(session).sign(
            patient_id, team, service_package=package, starts_on=date.fromisoformat(starts)
        )
        return {
            "contract": {
                "patient_id": patient_id,
                "team": record.team_code,
                "starts_on": str(record.starts_on),
            }
        }

    _run(
        ctx,
        action="contract.sign",
        target=patient_id,
        detail={"team": team, "package": package},
        operation=operation,
    )


@contract_app.command("end")
def contract_end(
    ctx: typer.Context,
    patient_id: str,
    on: Annotated[str, typer.Option("--on", help="End date, exclusive (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option(help="Why the contract ends.")],
) -> None:
    """End a patient's open contract."""

    def operation(session: Session) -> dict[str, Any]:
        record = ContractRepository(session).end(
            patient_id, ends_on=date.fromisoformat(on), reason=reason
        )
        return {
            "contract": {
                "patient_id": patient_id,
                "team": record.team_code,
                "ends_on": str(record.ends_on),
            }
        }

    _run(ctx, action="contract.end", target=patient_id, detail={"on": on}, operation=operation)


@rota_app.command("add")
def rota_add(
    ctx: typer.Context,
    team: str,
    doctor: str,
    start: Annotated[str, typer.Option("--from", help="Start, with offset.")],
    end: Annotated[str, typer.Option("--to", help="End, with offset.")],
    covers: Annotated[str | None, typer.Option(help="The doctor on leave this covers.")] = None,
) -> None:
    """Put a doctor on duty for a team."""

    def operation(session: Session) -> dict[str, Any]:
        shift = RotaRepository(session).add_shift(
            team,
            doctor,
            starts_at=_aware(start, "from"),
            ends_at=_aware(end, "to"),
            covers=covers,
        )
        return {
            "shift": {
                "team": shift.team_code,
                "doctor": shift.doctor_username,
                "starts_at": shift.starts_at.isoformat(),
                "ends_at": shift.ends_at.isoformat(),
                "covers": shift.covers_username,
            }
        }

    _run(
        ctx,
        action="rota.add",
        target=team,
        detail={"doctor": doctor, "from": start, "to": end},
        operation=operation,
    )


@family_app.command("link")
def family_link(
    ctx: typer.Context,
    patient_id: str,
    username: str,
    relationship: Annotated[str, typer.Option(help="daughter, son, spouse, carer …")],
) -> None:
    """Link a family member's account to a patient (access needs the patient's consent)."""

    def operation(session: Session) -> dict[str, Any]:
        FamilyRepository(session).link(patient_id, username, relationship=relationship)
        return {"link": {"patient_id": patient_id, "username": username}}

    _run(
        ctx,
        action="family.link",
        target=patient_id,
        detail={"username": username},
        operation=operation,
    )


@family_app.command("grant")
def family_grant(
    ctx: typer.Context,
    patient_id: str,
    username: str,
    scope: Annotated[
        list[str], typer.Option(help="view_readings, receive_alerts, act_for_patient.")
    ],
    on_behalf_of: Annotated[
        str, typer.Option(help="Who gave the consent (the patient's username, e.g. on paper).")
    ],
    expires: Annotated[str | None, typer.Option(help="Expiry, with offset.")] = None,
) -> None:
    """Record the consent the patient gave a family member."""

    def operation(session: Session) -> dict[str, Any]:
        record = FamilyRepository(session).grant(
            patient_id,
            username,
            parse_scopes(scope),
            granted_by=on_behalf_of,
            expires_at=_aware(expires, "expires") if expires else None,
        )
        return {
            "consent": {
                "patient_id": patient_id,
                "username": username,
                "scopes": sorted(s.value for s in record.scopes),
            }
        }

    _run(
        ctx,
        action="family.grant",
        target=patient_id,
        detail={"username": username, "scopes": ",".join(sorted(scope))},
        operation=operation,
    )


@family_app.command("revoke")
def family_revoke(
    ctx: typer.Context,
    patient_id: str,
    username: str,
    on_behalf_of: Annotated[str, typer.Option(help="Who revoked it (the patient).")],
) -> None:
    """Revoke a family member's consent; their next request is refused."""

    def operation(session: Session) -> dict[str, Any]:
        count = FamilyRepository(session).revoke(patient_id, username, revoked_by=on_behalf_of)
        return {"revoked": count}

    _run(
        ctx,
        action="family.revoke",
        target=patient_id,
        detail={"username": username},
        operation=operation,
    )
