"""A home gateway with an unpaired Bluetooth glucose meter beside it, for the pairing test.

``python -m tests.web.pairing_gateway --config FILE`` runs the real
:class:`~gateway.runtime.GatewayRuntime` (what ``python -m gateway`` runs) with one
simulated meter on a bumble virtual radio inside the process. Unlike the demo's and the
chain suite's gateways, the meter is **not** paired at start: it sits there advertising, as
a new meter in pairing mode does, until a ``cmd/pair`` from the API opens the window and
the gateway finds it, reads its identity over the Device Information service and pairs it.

The meter measures 5.6 mmol/L every :data:`MEASURE_EVERY_SECONDS` from its start, so a
reading measured after the pairing (the first one the registry accepts for the patient)
comes soon after whatever moment the test pairs it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from device_drivers.simulators.scenario import Scenario
from tests.integration.chain_helpers import wall_clock

METER_PROFILE: Final = "roche_accu_chek_guide"
MEASURE_EVERY_SECONDS: Final = 15.0
"""Often enough that the first reading after pairing comes within a browser wait, rarely
enough that the ownership cache (5 s) has seen the new binding by then."""
GLUCOSE_MMOL_PER_L: Final = 5.6


def meter_scenario() -> Scenario:
    """A meter that measures the same in-target value every few seconds."""
    return Scenario.from_dict(
        {
            "series": [
                {
                    "start_offset_seconds": MEASURE_EVERY_SECONDS,
                    "interval_seconds": MEASURE_EVERY_SECONDS,
                    "count": 400,
                    "values": {"glucose": GLUCOSE_MMOL_PER_L},
                    "kind": "glucose",
                    "context": {"meal": "preprandial"},
                }
            ]
        }
    )


async def _serve(config: Path) -> None:
    from device_drivers.profiles import load_profiles
    from device_drivers.simulators.ble_home import SimulatedHome
    from gateway.config import load_settings
    from gateway.links import BleBackends
    from gateway.runtime import GatewayRuntime

    settings = load_settings(config)
    profiles = {profile.profile_id: profile for profile in load_profiles(settings.profiles_dir)}
    home = SimulatedHome(
        [profiles[METER_PROFILE]],
        scenarios={METER_PROFILE: meter_scenario()},
        now=wall_clock(settings.clock.time_zone),
    )
    await home.start()
    try:
        runtime = GatewayRuntime(
            settings,
            config_path=config,
            ble=BleBackends(client=home.client_backend, scanner=home.scanner_backend),
            handle_signals=True,
        )
        await runtime.run()
    finally:
        await home.stop()


def main(argv: Iterable[str] | None = None) -> int:
    """Run the gateway and its unpaired meter until SIGTERM."""
    from gateway.config import load_settings
    from gateway.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m tests.web.pairing_gateway")
    parser.add_argument("--config", type=Path, required=True)
    arguments = parser.parse_args(list(argv) if argv is not None else None)
    configure_logging(load_settings(arguments.config).log_level)
    asyncio.run(_serve(arguments.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
