"""``vitalgate gateway``: run the home gateway; pair, unpair and list its devices.

Examples::

    vitalgate gateway run --config /etc/vitalgate/gateway.toml
    vitalgate gateway run --config demo.toml --simulate --patient demo-patient
    vitalgate gateway pair --config gateway.toml --patient P-0042
    vitalgate gateway pair --config gateway.toml --patient P-0042 \\
        --profile lifescan_onetouch_ultra2 --address /dev/ttyUSB0
    vitalgate gateway unpair Roche-Accu-Chek_Guide-92310000123 --config gateway.toml
    vitalgate gateway devices --config gateway.toml

``pair`` is the operator's pairing window: it scans for ``--timeout`` seconds, lists the
devices that look like a known model, lets the operator choose one (or takes
``--address``), connects, reads the identity **from the device** and binds it to the
patient. A running gateway picks the change up within seconds. Results go to stdout as
JSON; errors to stderr with exit status 2 (bad input) or 1 (runtime failure).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from device_drivers.profiles import DeviceProfile
    from device_drivers.transports.ble import Advertisement
    from gateway.config import GatewaySettings
    from gateway.pairing import Candidate, Pairing

EXIT_BAD_INPUT: Final = 2
EXIT_RUNTIME_FAILURE: Final = 1
DEFAULT_PAIRING_SCAN_SECONDS: Final = 10.0
"""Long enough to hear a meter that advertises every 1–2 s while the patient presses its
Bluetooth button."""
SIMULATED_SCAN_SECONDS: Final = 1.0
"""Simulated devices advertise every 100 ms."""

app = typer.Typer(
    help="Run the home gateway; pair and unpair devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="Gateway configuration (TOML or YAML).", exists=True, dir_okay=False
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _settings(config: Path) -> GatewaySettings:
    from gateway.config import load_settings
    from gateway.errors import SettingsError

    try:
        return load_settings(config)
    except SettingsError as exc:
        raise _fail(f"invalid configuration:\n{exc}", EXIT_BAD_INPUT) from None


def _pairing_document(pairing: Pairing) -> dict[str, Any]:
    return {
        "device_id": pairing.device_id,
        "patient_id": pairing.patient_id,
        "profile": pairing.profile_id,
        "address": pairing.address,
        "time_zone": pairing.time_zone,
        "paired_at": pairing.paired_at.isoformat(timespec="seconds"),
    }


@app.command()
def run(
    config: ConfigOption,
    simulate: Annotated[
        bool,
        typer.Option(
            help="Also simulate one device of every model with a simulator (unless the "
            "configuration lists its own simulators), bound to --patient."
        ),
    ] = False,
    patient: Annotated[
        str, typer.Option(help="Patient of the simulated devices (with --simulate).")
    ] = "demo-patient",
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C (structured JSON logs on stderr)."""
    from gateway.errors import ConfigError, GatewayError
    from gateway.logging import configure_logging
    from gateway.runtime import serve
    from vitalgate import __version__

    settings = _settings(config)
    configure_logging(settings.log_level)
    try:
        asyncio.run(
            serve(
                config,
                simulate_patient=patient if simulate else None,
                software_version=__version__,
            )
        )
    except ConfigError as exc:
        raise _fail(f"invalid configuration:\n{exc}", EXIT_BAD_INPUT) from None
    except GatewayError as exc:
        raise _fail(f"gateway failed: {exc}", EXIT_RUNTIME_FAILURE) from None


def _profiles(settings: GatewaySettings) -> dict[str, DeviceProfile]:
    from device_drivers.profiles import ProfileError, load_profiles

    try:
        return {profile.profile_id: profile for profile in load_profiles(settings.profiles_dir)}
    except ProfileError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None


def _show_candidates(candidates: list[Candidate]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Devices that can be paired")
    for column in ("#", "address", "model", "name", "rssi"):
        table.add_column(column)
    for number, candidate in enumerate(candidates, start=1):
        table.add_row(
            str(number),
            candidate.address,
            f"{candidate.profile.manufacturer} {candidate.profile.model}",
            candidate.name or "",
            "" if candidate.rssi is None else str(candidate.rssi),
        )
    Console(stderr=True).print(table)


async def _pair(
    settings: GatewaySettings,
    *,
    patient: str,
    profile_id: str | None,
    address: str | None,
    time_zone: str,
    timeout_seconds: float,
    simulate: bool,
    choose: bool,
) -> Pairing:
    from datetime import UTC, datetime

    from device_drivers.errors import DriverError
    from device_drivers.transports.ble import scan
    from gateway.discovery import find_candidates, identify
    from gateway.errors import PairingError
    from gateway.links import BleBackends
    from gateway.pairing import Candidate, PairingStore

    profiles = _profiles(settings)
    if profile_id is not None and profile_id not in profiles:
        raise _fail(
            f"no device profile {profile_id!r}; known: {', '.join(sorted(profiles))}",
            EXIT_BAD_INPUT,
        )
    wanted = [p for p in profiles.values() if profile_id is None or p.profile_id == profile_id]
    home = None
    ble: BleBackends | None = None
    if simulate:
        from device_drivers.simulators.ble_home import SimulatedHome

        home = SimulatedHome([p for p in wanted if p.is_ble])
        await home.start()
        ble = BleBackends(client=home.client_backend, scanner=home.scanner_backend)
    try:
        candidates: list[Candidate] = []
        if address is not None and profile_id is not None and not profiles[profile_id].is_ble:
            candidates = [Candidate(address=address, profile=profiles[profile_id])]
        else:
            scan_seconds = SIMULATED_SCAN_SECONDS if simulate else timeout_seconds

            async def listen() -> Sequence[Advertisement]:
                return await scan(scan_seconds, backend=ble.scanner if ble is not None else None)

            try:
                candidates = await find_candidates(wanted, listen, serial=not simulate)
            except DriverError as exc:
                raise _fail(f"cannot scan for BLE devices: {exc}", EXIT_RUNTIME_FAILURE) from None
        if address is not None:
            candidates = [c for c in candidates if c.address.upper() == address.upper()]
        if not candidates:
            raise _fail(
                "no pairable device found: put the device in pairing mode (or seat the meter "
                "in its cable) and try again",
                EXIT_RUNTIME_FAILURE,
            )
        chosen = candidates[0]
        if len(candidates) > 1 and choose:
            _show_candidates(candidates)
            number = typer.prompt("Pair which device (number)?", type=int, err=True)
            if not 1 <= number <= len(candidates):
                raise _fail(f"no device number {number}", EXIT_BAD_INPUT)
            chosen = candidates[number - 1]
        elif len(candidates) > 1:
            raise _fail(
                f"{len(candidates)} devices found; choose one with --address", EXIT_BAD_INPUT
            )
        try:
            info = await identify(chosen, ble=ble)
        except PairingError as exc:
            raise _fail(str(exc), EXIT_RUNTIME_FAILURE) from None
        with PairingStore(settings.pairings_path, clock=lambda: datetime.now(UTC)) as store:
            try:
                return store.bind(
                    info,
                    patient_id=patient,
                    profile_id=chosen.profile.profile_id,
                    address=chosen.address,
                    time_zone=time_zone,
                )
            except PairingError as exc:
                raise _fail(str(exc), EXIT_BAD_INPUT) from None
    finally:
        if home is not None:
            await home.stop()


@app.command()
def pair(
    config: ConfigOption,
    patient: Annotated[str, typer.Option(help="The patient the device belongs to.")],
    profile: Annotated[
        str | None, typer.Option(help="Only devices of this model (a profile id).")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="The device to pair: a BLE address from the list, or a serial port "
            "(with --profile)."
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(help="The patient's IANA time zone (default: clock.time_zone)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to scan for devices.", min=0.5)
    ] = DEFAULT_PAIRING_SCAN_SECONDS,
    simulate: Annotated[
        bool, typer.Option(help="Scan simulated devices on a virtual radio instead.")
    ] = False,
    choose: Annotated[
        bool, typer.Option(help="Ask which device to pair when several are found.")
    ] = True,
) -> None:
    """Find a device, read its identity from it, and bind it to a patient."""
    import re

    from gateway.config import check_time_zone
    from readings.model import ID_PATTERN

    settings = _settings(config)
    if not re.match(ID_PATTERN, patient):
        raise _fail(f"--patient {patient!r} is not a valid id", EXIT_BAD_INPUT)
    zone = time_zone or settings.clock.time_zone
    try:
        check_time_zone(zone)
    except ValueError as exc:
        raise _fail(f"--time-zone: {exc}", EXIT_BAD_INPUT) from None
    pairing = asyncio.run(
        _pair(
            settings,
            patient=patient,
            profile_id=profile,
            address=address,
            time_zone=zone,
            timeout_seconds=timeout,
            simulate=simulate,
            choose=choose,
        )
    )
    typer.echo(json.dumps(_pairing_document(pairing), ensure_ascii=False, indent=2))


@app.command()
def unpair(
    device_id: Annotated[str, typer.Argument(help="The device id (manufacturer-model-serial).")],
    config: ConfigOption,
) -> None:
    """Forget a device: its readings are no longer forwarded."""
    from datetime import UTC, datetime

    from gateway.pairing import PairingStore

    settings = _settings(config)
    with PairingStore(settings.pairings_path, clock=lambda: datetime.now(UTC)) as store:
        pairing = store.unbind(device_id)
    if pairing is None:
        raise _fail(f"{device_id} is not paired to this gateway", EXIT_BAD_INPUT)
    typer.echo(json.dumps(_pairing_document(pairing), ensure_ascii=False, indent=2))


@app.command()
def devices(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the paired devices and what the running gateway last knew of them."""
    from datetime import UTC, datetime

    from gateway.pairing import PairingStore

    settings = _settings(config)
    with PairingStore(settings.pairings_path, clock=lambda: datetime.now(UTC)) as store:
        pairings = store.all()
        states = store.states()
    documents = []
    for pairing in pairings:
        document = _pairing_document(pairing)
        state = states.get(pairing.device_id)
        document["state"] = state.state if state is not None else None
        document["last_contact"] = (
            state.last_contact.isoformat(timespec="seconds")
            if state is not None and state.last_contact is not None
            else None
        )
        document["battery_percent"] = state.battery_percent if state is not None else None
        documents.append(document)
    if as_json:
        typer.echo(json.dumps(documents, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Devices of gateway {settings.gateway_id}")
    for column in ("device", "patient", "model", "address", "state", "last contact", "battery"):
        table.add_column(column)
    for document in documents:
        battery = document["battery_percent"]
        table.add_row(
            document["device_id"],
            document["patient_id"],
            document["profile"],
            document["address"],
            document["state"] or "never served",
            document["last_contact"] or "",
            "" if battery is None else f"{battery} %",
        )
    Console().print(table)
