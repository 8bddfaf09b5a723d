"""``vitalgate devices``: the supported device models, and the BLE devices in range.

Examples::

    vitalgate devices profiles
    vitalgate devices profiles --json
    vitalgate devices scan --timeout 10
    vitalgate devices scan --simulate --json

``scan`` matches what it hears against the profiles (advertised service and name). With
``--simulate`` it starts the simulated devices on a virtual radio and scans them through the
same bleak code path. Device identity is read from the device when it is paired, never
taken from the (possibly random) address shown here. bleak and bumble are imported only
by ``scan``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

if TYPE_CHECKING:
    from device_drivers.profiles import DeviceProfile
    from device_drivers.transports.ble import Advertisement

EXIT_BAD_INPUT: Final = 2
EXIT_RUNTIME_FAILURE: Final = 1
DEFAULT_SCAN_SECONDS: Final = 5.0
"""Long enough to hear a device advertising every 1–2 s a few times."""
SIMULATED_SCAN_SECONDS: Final = 1.0
"""Simulated devices advertise every 100 ms."""

app = typer.Typer(
    help="Supported device models, and devices in range.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ProfileDirectory = Annotated[
    Path | None,
    typer.Option(
        "--profiles",
        help="Folder of profile TOML files (default: the shipped firmware_configs).",
        exists=True,
        file_okay=False,
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _load(directory: Path | None) -> list[DeviceProfile]:
    from device_drivers.profiles import ProfileError, load_profiles

    try:
        return load_profiles(directory)
    except ProfileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _transport_text(profile: DeviceProfile) -> str:
    transport = profile.transport
    if transport.kind == "ble":
        services = ", ".join(_short(uuid) for uuid in transport.service_uuids)
        return f"BLE {services}"
    stopbits = f"{transport.stopbits:g}"
    return f"serial {transport.baud} {transport.bytesize}{transport.parity}{stopbits}"


def _short(uuid: str) -> str:
    from device_drivers.gatt.uuids import short_form

    return short_form(uuid)


@app.command("profiles")
def list_profiles(directory: ProfileDirectory = None, as_json: JsonOutput = False) -> None:
    """List the supported device models (one profile file each)."""
    profiles = _load(directory)
    if as_json:
        documents = [profile.model_dump(mode="json") for profile in profiles]
        typer.echo(json.dumps(documents, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Supported device models")
    for column in ("profile", "device", "measures", "transport", "driver"):
        table.add_column(column, overflow="fold")
    for profile in profiles:
        table.add_row(
            profile.profile_id,
            f"{profile.manufacturer} {profile.model}",
            ", ".join(kind.value for kind in profile.kinds),
            _transport_text(profile),
            profile.driver,
        )
    Console().print(table)


def _scan_document(advertisement: Advertisement, models: list[str]) -> dict[str, Any]:
    return {
        "address": advertisement.address,
        "name": advertisement.local_name,
        "rssi": advertisement.rssi,
        "service_uuids": list(advertisement.service_uuids),
        "profiles": models,
    }


async def _scan(
    timeout_seconds: float, *, simulate: bool, profiles: list[DeviceProfile]
) -> list[dict[str, Any]]:
    from device_drivers.transports.ble import scan

    if simulate:
        from device_drivers.simulators.ble_home import SimulatedHome

        async with SimulatedHome(profiles) as home:
            heard = await home.scan(timeout_seconds)
    else:
        heard = await scan(timeout_seconds)
    return [
        _scan_document(
            advertisement,
            [
                profile.profile_id
                for profile in profiles
                if profile.matches_advertisement(
                    advertisement.local_name, advertisement.service_uuids
                )
            ],
        )
        for advertisement in heard
    ]


@app.command("scan")
def scan_devices(
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Scan simulated devices on a virtual radio.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="Seconds to listen (default 5; 1 simulated)."),
    ] = None,
    directory: ProfileDirectory = None,
    as_json: JsonOutput = False,
) -> None:
    """List the BLE devices in range and the profiles they match."""
    from device_drivers.errors import DriverError

    profiles = _load(directory)
    seconds = timeout or (SIMULATED_SCAN_SECONDS if simulate else DEFAULT_SCAN_SECONDS)
    try:
        found = asyncio.run(_scan(seconds, simulate=simulate, profiles=profiles))
    except DriverError as error:
        typer.echo(f"scan failed: {error}", err=True)
        raise typer.Exit(EXIT_RUNTIME_FAILURE) from None
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BLE devices heard in {seconds:g} s")
    for column in ("address", "name", "rssi", "services", "profiles"):
        table.add_column(column, overflow="fold")
    for device in found:
        table.add_row(
            device["address"],
            device["name"] or "",
            str(device["rssi"]),
            ", ".join(_short(uuid) for uuid in device["service_uuids"]),
            ", ".join(device["profiles"]) or "(no supported model)",
        )
    Console().print(table)
