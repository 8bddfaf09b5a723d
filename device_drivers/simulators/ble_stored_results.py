"""Simulated devices that keep each result until a central has received it.

Cuffs, scales, thermometers and an oximeter's spot checks behave alike: the device stores
a finished measurement, indicates it as soon as a central has enabled indications (the
backlog first, oldest first), and forgets it only when the indication was confirmed. So a
measurement taken while no gateway is in range arrives at the next connection, and one
taken during a connection arrives at once.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from bumble.device import Connection
from bumble.gatt import Characteristic

from device_drivers.profiles import DeviceProfile
from device_drivers.simulators.ble_peripheral import SimulatedPeripheral
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario, ScenarioRecord, local_wall_clock


class StoredResultPeripheral(SimulatedPeripheral, abc.ABC):
    """A device whose results wait in memory until their indication is confirmed."""

    def __init__(
        self,
        link: BumbleLink,
        profile: DeviceProfile,
        scenario: Scenario | None = None,
        *,
        now: Callable[[], datetime] = local_wall_clock,
    ) -> None:
        super().__init__(link, profile, scenario, now=now)
        self._delivered: set[int] = set()
        self._sending = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    @abc.abstractmethod
    def result_characteristic(self) -> Characteristic[bytes]:
        """The characteristic results are indicated on."""

    @abc.abstractmethod
    def result_value(self, record: ScenarioRecord) -> bytes:
        """The characteristic value of ``record``."""

    def is_stored_result(self, record: ScenarioRecord) -> bool:
        """Whether ``record`` is a stored, indicated result (all of them, by default)."""
        return True

    async def before_result(self, connection: Connection, record: ScenarioRecord) -> bool:
        """Runs before a result taken during the connection is indicated (a cuff notifies
        its inflation); ``False`` ends the transfer."""
        return True

    async def start(self) -> None:
        """Start, and send the backlog to every central that enables indications."""
        self.result_characteristic.on(Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)
        await super().start()

    def _on_subscription(self, bearer: Connection, _notify: bool, indicate: bool) -> None:
        if indicate:
            task = asyncio.get_running_loop().create_task(self._deliver(bearer, fresh=()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def unsent(self) -> list[ScenarioRecord]:
        """Results in memory that no central has confirmed yet, oldest first."""
        stored = [record for record in self.taken_records() if self.is_stored_result(record)]
        capacity = self.memory_capacity
        kept = stored[-capacity:] if capacity else stored
        return [record for record in kept if id(record) not in self._delivered]

    async def on_records_taken(self, records: Sequence[ScenarioRecord]) -> None:
        """Indicate new results to every central listening."""
        for connection in list(self.connections):
            if self.is_subscribed(connection, self.result_characteristic):
                await self._deliver(connection, fresh=records)

    async def _deliver(self, connection: Connection, *, fresh: Collection[ScenarioRecord]) -> None:
        async with self._sending:
            budget = self.new_transfer()
            for record in self.unsent():
                if record in fresh and not await self.before_result(connection, record):
                    return
                value = self.result_value(record)
                if not await self.send(
                    connection, self.result_characteristic, value, indicate=True, budget=budget
                ):
                    return
                self._delivered.add(id(record))
