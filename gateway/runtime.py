"""The gateway process: settings → outbox → publisher → pairings → one session per device.

:class:`GatewayRuntime` assembles the parts and supervises them on one asyncio loop:

* the durable outbox and the pairing store in the data directory;
* the MQTT publisher (its own thread), which also delivers the clinic's commands
  (``cmd/pair``, ``cmd/unpair``, ``cmd/sync_time``, ``cmd/reload_config``) and asks for
  the devices' states for the retained status;
* one :class:`~gateway.session.DeviceSession` task per paired device, started and stopped
  as pairings come and go (the CLI's ``pair``/``unpair`` take effect within seconds);
* one shared BLE scanner (:class:`~gateway.session.AdvertisementMonitor`) when BLE
  devices are paired;
* the pairing window and its task (:mod:`gateway.pairing_window`), opened by ``cmd/pair``,
  finding and identifying devices the way ``vitalgate gateway pair`` does
  (:mod:`gateway.discovery`);
* simulated devices (``[[simulators]]``, :mod:`gateway.simulation`), started on a virtual
  radio or pseudo-terminals and paired automatically — the demo and the tests use them;
* systemd notifications (:mod:`gateway.systemd`).

Links to devices are built by :mod:`gateway.links`. SIGTERM and SIGINT stop it cleanly
(every task is cancelled and waited for, see :mod:`gateway.tasks`; the publisher
publishes the offline status); SIGHUP reloads the configuration like ``cmd/reload_config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from device_drivers.errors import DriverError
from device_drivers.profiles import DeviceProfile, ProfileError, load_profiles
from gateway.config import GatewaySettings, load_settings
from gateway.discovery import find_candidates, identify
from gateway.errors import ConfigError, GatewayError, PairingError, SettingsError
from gateway.links import BleBackends, open_link
from gateway.outbox import SqliteOutbox
from gateway.pairing import (
    Candidate,
    OpenWindow,
    Pairing,
    PairingStore,
    PairingWindow,
)
from gateway.pairing_window import run_pairing_window
from gateway.publisher import Publisher
from gateway.session import (
    DISCONNECT_TIMEOUT_SECONDS,
    AdvertisementMonitor,
    AdvertisementTrigger,
    ContactTrigger,
    DeviceLink,
    DeviceSession,
    LinkFactory,
    SerialPortTrigger,
)
from gateway.simulation import Simulation, simulate_every_device
from gateway.systemd import SystemdNotifier
from gateway.tasks import cancel_and_wait
from readings.codec import (
    DeviceStatus,
    EventMessage,
    EventType,
    PairCommand,
    ReloadConfigCommand,
    SyncTimeCommand,
    UnpairCommand,
    decode_message,
)
from readings.errors import PayloadError, TopicError
from readings.topics import Command, parse_topic

if TYPE_CHECKING:
    from device_drivers.transports.ble import Advertisement

__all__ = ["GatewayRuntime", "serve", "utc_now"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

PAIRINGS_SYNC_SECONDS: Final = 2.0
"""How often the pairing store is compared with the running sessions: a device paired
or unpaired with the CLI starts or stops being served within this long."""
STATE_RECORD_SECONDS: Final = 10.0
"""How often device states are written for ``vitalgate gateway devices``."""
SIMULATED_SCAN_WINDOW_SECONDS: Final = 0.5
"""Simulated devices advertise every 100 ms; a short window reacts at once."""
STORAGE_THREADS: Final = 2
"""Threads for outbox and pairing-store calls. SQLite writes are serialised by the outbox
anyway; a second thread lets a read proceed while a commit waits for its fsync."""
SHUTDOWN_RECANCEL_SECONDS: Final = DISCONNECT_TIMEOUT_SECONDS + 2.0
"""A cancelled session ends within its bounded disconnect; one still running after that
(plus scheduling slack) lost its cancel inside a library and is cancelled again."""


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


# -- the runtime ------------------------------------------------------------------------


@dataclass(slots=True)
class _Running:
    pairing: Pairing
    session: DeviceSession
    task: asyncio.Task[None]


class GatewayRuntime:
    """The gateway process (see the module docstring).

    Args:
        settings: the validated configuration.
        config_path: the file it came from, for ``cmd/reload_config`` and SIGHUP.
        clock: the current time, timezone-aware.
        notifier: systemd notifications (default: from the environment).
        ble: bleak backends instead of the OS Bluetooth stack (tests); the simulators'
            when ``[[simulators]]`` lists BLE devices.
        software_version: reported in the status.
        handle_signals: install SIGTERM/SIGINT/SIGHUP handlers (the process's main loop).
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        config_path: Path | None = None,
        clock: Clock = utc_now,
        notifier: SystemdNotifier | None = None,
        ble: BleBackends | None = None,
        software_version: str | None = None,
        handle_signals: bool = False,
    ) -> None:
        self.settings = settings
        self._config_path = config_path
        self._clock = clock
        self._notifier = notifier if notifier is not None else SystemdNotifier()
        self._ble = ble
        self._software_version = software_version
        self._handle_signals = handle_signals
        self.window = PairingWindow(clock)
        self.ready = asyncio.Event()
        """Set once the gateway serves its devices and the publisher runs."""
        self._stop = asyncio.Event()
        self._running: dict[str, _Running] = {}
        self._port_locks: dict[str, asyncio.Lock] = {}
        self._profiles: dict[str, DeviceProfile] = {}
        self._monitor: AdvertisementMonitor | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._pairing_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publisher: Publisher | None = None
        self._outbox: SqliteOutbox | None = None
        self._pairings: PairingStore | None = None
        self._recorded: dict[str, tuple[str, datetime | None, int | None]] = {}
        self._known_pairings: dict[str, Pairing] | None = None
        self._storage = ThreadPoolExecutor(
            max_workers=STORAGE_THREADS, thread_name_prefix="gateway-storage"
        )

    # -- public --------------------------------------------------------------------------

    @property
    def sessions(self) -> dict[str, DeviceSession]:
        """The running device sessions, by device id."""
        return {device_id: running.session for device_id, running in self._running.items()}

    @property
    def publisher(self) -> Publisher:
        """The MQTT publisher (once running)."""
        if self._publisher is None:
            raise GatewayError("the gateway is not running")
        return self._publisher

    @property
    def pairings(self) -> PairingStore:
        """The pairing store (once running)."""
        if self._pairings is None:
            raise GatewayError("the gateway is not running")
        return self._pairings

    def stop(self) -> None:
        """Ask the gateway to stop (from the loop's thread)."""
        self._stop.set()

    def device_statuses(self) -> list[DeviceStatus]:
        """Every paired device's state; called from the publisher's thread.

        ``tuple()`` copies the values in one step under the GIL, so the loop changing the
        dict meanwhile cannot break the iteration.
        """
        return [running.session.status() for running in tuple(self._running.values())]

    async def run(self) -> None:
        """Serve until :meth:`stop`, a signal, or a failure of the publisher.

        Raises:
            GatewayError: the outbox, pairings, profiles or publisher failed.
        """
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        self._profiles = self._load_profiles()
        self._outbox = SqliteOutbox(
            settings.outbox_path,
            quota_bytes=settings.outbox.quota_bytes,
            reserve_bytes=settings.outbox.reserve_bytes,
            ack_timeout_seconds=settings.mqtt.ack_timeout_seconds,
            clock=self._clock,
        )
        simulation = Simulation(settings.simulators, self._profiles, settings.clock.time_zone)
        tasks: list[asyncio.Task[Any]] = []
        publisher_task: asyncio.Task[None] | None = None
        try:
            self._pairings = PairingStore(settings.pairings_path, clock=self._clock)
            self._known_pairings = {p.device_id: p for p in self._pairings.all()}
            await simulation.start()
            if simulation.ble is not None:
                self._ble = simulation.ble
            self._publisher = Publisher(
                settings.publisher_settings(self._software_version),
                self._outbox,
                clock=self._clock,
                device_statuses=self.device_statuses,
                on_command=self._on_command,
            )
            publisher_task = asyncio.create_task(self._publisher.run(), name="publisher")
            await self._pair_simulated(simulation)
            self._sync_sessions()
            tasks.append(asyncio.create_task(self._maintain(), name="maintenance"))
            if self._notifier.watchdog_seconds is not None:
                tasks.append(asyncio.create_task(self._watchdog(publisher_task), name="watchdog"))
            self._install_signals()
            self._notifier.notify(f"READY=1\nSTATUS=serving {len(self._running)} device(s)")
            self.ready.set()
            logger.info(
                "gateway running",
                extra={"gateway_id": settings.gateway_id, "count": len(self._running)},
            )
            stop_waiter = asyncio.create_task(self._stop.wait(), name="stop")
            tasks.append(stop_waiter)
            await asyncio.wait((stop_waiter, publisher_task), return_when=asyncio.FIRST_COMPLETED)
            if publisher_task.done():
                publisher_task.result()
                raise GatewayError("the publisher stopped unexpectedly")
        finally:
            self._notifier.notify("STOPPING=1")
            self._remove_signals()
            await self._shutdown(tasks, publisher_task)
            await simulation.stop()
            if self._pairings is not None:
                self._pairings.close()
            self._storage.shutdown(wait=True)
            self._outbox.close()
            logger.info("gateway stopped", extra={"gateway_id": settings.gateway_id})

    def open_pairing_window(
        self,
        *,
        patient_id: str,
        seconds: float,
        profile_id: str | None = None,
        time_zone: str | None = None,
    ) -> OpenWindow:
        """Open (or re-open) the pairing window and start looking for new devices.

        Raises:
            PairingError: the window length is out of range, or the profile is unknown.
        """
        if profile_id is not None and profile_id not in self._profiles:
            raise PairingError(f"no device profile {profile_id!r}")
        window = self.window.open(
            patient_id=patient_id, seconds=seconds, profile_id=profile_id, time_zone=time_zone
        )
        detail: dict[str, str | int | float | bool] = {"window_seconds": round(seconds)}
        if profile_id is not None:
            detail["profile"] = profile_id
        self._emit(EventType.PAIRING_WINDOW_OPENED, None, detail)
        logger.info("pairing window opened", extra={"window": round(seconds)})
        if self._pairing_task is not None:
            self._pairing_task.cancel()
        self._pairing_task = asyncio.create_task(self._pair_in_window(window), name="pairing")
        return window

    def unpair(self, device_id: str) -> Pairing | None:
        """Forget a device and stop serving it; ``None`` if it was not paired."""
        pairing = self.pairings.unbind(device_id)
        self._sync_sessions()
        return pairing

    def sync_time(self) -> None:
        """Contact every device now: read (and where allowed set) its clock, download."""
        for running in self._running.values():
            running.session.request_contact()

    def reload(self) -> None:
        """Re-read the configuration file and restart the device sessions with it.

        Settings that shape the process itself (broker, data directory, gateway id,
        simulators) only take effect at the next start; that is logged.
        """
        if self._config_path is None:
            logger.warning("no configuration file to reload")
            return
        try:
            fresh = load_settings(self._config_path)
        except SettingsError as exc:
            logger.error("configuration not reloaded", extra={"reason": str(exc)})
            return
        fixed = [
            name
            for name in ("gateway_id", "data_dir", "mqtt", "outbox", "simulators", "profiles_dir")
            if getattr(fresh, name) != getattr(self.settings, name)
        ]
        if fixed:
            logger.warning("changed settings need a restart", extra={"reason": ", ".join(fixed)})
        self.settings = self.settings.model_copy(
            update={"devices": fresh.devices, "breaker": fresh.breaker, "clock": fresh.clock}
        )
        for device_id in list(self._running):
            self._stop_session(device_id)
        self._sync_sessions()
        logger.info("configuration reloaded", extra={"count": len(self._running)})

    # -- sessions --------------------------------------------------------------------------

    def _load_profiles(self) -> dict[str, DeviceProfile]:
        try:
            return {p.profile_id: p for p in load_profiles(self.settings.profiles_dir)}
        except ProfileError as exc:
            raise ConfigError("profiles_dir", str(exc)) from exc

    def _sync_sessions(self) -> None:
        """Follow the pairing store: start sessions for new pairings, stop those of removed
        or changed ones, and announce devices paired or unpaired since the last look (by
        this process or by the CLI)."""
        pairings = {pairing.device_id: pairing for pairing in self.pairings.all()}
        known = self._known_pairings
        if known is not None:
            for device_id in pairings.keys() - known.keys():
                self._announce(EventType.PAIRED, pairings[device_id])
            for device_id in known.keys() - pairings.keys():
                self._announce(EventType.UNPAIRED, known[device_id])
        self._known_pairings = pairings
        for device_id, running in list(self._running.items()):
            if pairings.get(device_id) != running.pairing or self._crashed(running):
                self._stop_session(device_id)
        for device_id, pairing in pairings.items():
            if device_id not in self._running:
                self._start_session(pairing)

    def _announce(self, event: EventType, pairing: Pairing) -> None:
        detail: dict[str, str | int | float | bool] = {"profile": pairing.profile_id}
        if event is EventType.PAIRED:
            # The clinic records the binding from this event; a patient id is no health value.
            detail.update(patient_id=pairing.patient_id, time_zone=pairing.time_zone)
        self._emit(event, pairing.device_id, detail)
        logger.info("pairing changed", extra={"device_id": pairing.device_id, "event": event.value})

    def _start_session(self, pairing: Pairing) -> None:
        profile = self._profiles.get(pairing.profile_id)
        if profile is None:
            logger.error(
                "paired device has an unknown profile; not served",
                extra={"device_id": pairing.device_id, "reason": pairing.profile_id},
            )
            return
        assert self._outbox is not None
        settings = self.settings
        session = DeviceSession(
            pairing=pairing,
            profile=profile,
            link_factory=self._link_factory(pairing, profile),
            trigger=self._trigger(pairing, profile),
            outbox=self._outbox,
            pairings=self.pairings,
            gateway_id=settings.gateway_id,
            events=self._publish_event,
            devices=settings.devices,
            breaker=settings.breaker,
            set_clocks=settings.clock.set_device_clocks,
            clock=self._clock,
            max_clock_offset_seconds=settings.clock.max_uncorrected_offset_seconds,
            port_lock=self._port_locks.setdefault(pairing.address, asyncio.Lock()),
            storage=self._storage,
        )
        task = asyncio.create_task(session.run(), name=f"session {pairing.device_id}")
        self._running[pairing.device_id] = _Running(pairing, session, task)
        logger.info("device session started", extra={"device_id": pairing.device_id})

    @staticmethod
    def _crashed(running: _Running) -> bool:
        """Whether a session task died of a bug (it is then started afresh). A session that
        ended on purpose (a refused device) stays, so its state is reported."""
        task = running.task
        if not task.done() or task.cancelled() or task.exception() is None:
            return False
        logger.error(
            "device session crashed; restarting it",
            extra={
                "device_id": running.pairing.device_id,
                "error": type(task.exception()).__name__,
            },
            exc_info=task.exception(),
        )
        return True

    def _stop_session(self, device_id: str) -> None:
        running = self._running.pop(device_id, None)
        if running is not None:
            running.task.cancel()
            logger.info("device session stopped", extra={"device_id": device_id})

    def _trigger(self, pairing: Pairing, profile: DeviceProfile) -> ContactTrigger:
        devices = self.settings.devices
        if profile.is_ble:
            return AdvertisementTrigger(
                self._ble_monitor(),
                pairing.address,
                min_interval_seconds=devices.ble_retry_seconds,
            )
        return SerialPortTrigger(
            pairing.address,
            poll_seconds=devices.serial_poll_seconds,
            check_seconds=devices.serial_presence_check_seconds,
        )

    def _link_factory(self, pairing: Pairing, profile: DeviceProfile) -> LinkFactory:
        def make() -> DeviceLink:
            advertisement = (
                self._monitor.advertisement(pairing.address) if self._monitor is not None else None
            )
            return open_link(profile, pairing.address, ble=self._ble, advertisement=advertisement)

        return make

    def _ble_monitor(self) -> AdvertisementMonitor:
        if self._monitor is None:
            from device_drivers.transports.ble import scan

            backend = self._ble.scanner if self._ble is not None else None

            async def scan_window(seconds: float) -> list[Advertisement]:
                return await scan(seconds, backend=backend)

            window = (
                SIMULATED_SCAN_WINDOW_SECONDS
                if self._ble is not None
                else self.settings.devices.ble_scan_window_seconds
            )
            self._monitor = AdvertisementMonitor(scan_window, window_seconds=window)
            self._monitor_task = asyncio.create_task(self._monitor.run(), name="ble scanner")
        return self._monitor

    # -- pairing -----------------------------------------------------------------------------

    async def _pair_simulated(self, simulation: Simulation) -> None:
        """Pair each simulated device to its configured patient (identity read from it)."""
        for entry in self.settings.simulators:
            profile = simulation.profile_of(entry)
            address = simulation.addresses[profile.profile_id]
            candidate = Candidate(address=address, profile=profile)
            try:
                await self._pair_candidate(
                    candidate, patient_id=entry.patient_id, time_zone=simulation.zone_of(entry)
                )
            except PairingError as exc:
                logger.error(
                    "simulated device not paired",
                    extra={"device_id": exc.device_id, "reason": exc.reason},
                )

    async def _pair_candidate(
        self, candidate: Candidate, *, patient_id: str, time_zone: str
    ) -> Pairing:
        info = await identify(candidate, ble=self._ble)
        return await asyncio.to_thread(
            self.pairings.bind,
            info,
            patient_id=patient_id,
            profile_id=candidate.profile.profile_id,
            address=candidate.address,
            time_zone=time_zone,
        )

    async def _discover(self, window: OpenWindow, seconds: float) -> list[Candidate]:
        profiles = [
            profile
            for profile in self._profiles.values()
            if window.profile_id is None or profile.profile_id == window.profile_id
        ]
        return await find_candidates(profiles, lambda: self._listen(seconds))

    async def _listen(self, seconds: float) -> Sequence[Advertisement]:
        """What the radio hears for ``seconds``: from the shared scanner when it runs
        (one scanner per adapter), else from a scan of our own."""
        if self._monitor is not None:
            since = time.monotonic()
            await asyncio.sleep(seconds)
            return self._monitor.heard_since(since)
        from device_drivers.transports.ble import scan

        try:
            return await scan(seconds, backend=self._ble.scanner if self._ble is not None else None)
        except DriverError as exc:
            logger.warning("BLE scan for pairing failed", extra={"error": str(exc)})
            await asyncio.sleep(seconds)
            return []

    async def _pair_in_window(self, window: OpenWindow) -> None:
        def closed(reason: str, paired: int) -> None:
            self._emit(EventType.PAIRING_WINDOW_CLOSED, None, {"reason": reason, "paired": paired})

        await run_pairing_window(
            window,
            windows=self.window,
            clock=self._clock,
            time_zone=self.settings.clock.time_zone,
            paired_addresses=lambda: {pairing.address.upper() for pairing in self.pairings.all()},
            discover=self._discover,
            pair=lambda candidate, patient_id, zone: self._pair_candidate(
                candidate, patient_id=patient_id, time_zone=zone
            ),
            on_paired=self._sync_sessions,
            on_closed=closed,
        )

    # -- commands ------------------------------------------------------------------------

    def _on_command(self, topic: str, payload: bytes) -> None:
        """From the publisher's thread: hand the command to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._handle_command, topic, payload)

    def _handle_command(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic)
        except TopicError as exc:
            logger.warning("ignored a message on an unknown topic", extra={"reason": str(exc)})
            return
        if parsed.gateway_id != self.settings.gateway_id or parsed.command is None:
            logger.warning("ignored a command for another gateway", extra={"topic": topic})
            return
        try:
            match parsed.command:
                case Command.PAIR:
                    pair = decode_message(payload, PairCommand)
                    self.open_pairing_window(
                        patient_id=pair.patient_id,
                        seconds=pair.window_seconds,
                        profile_id=pair.profile,
                    )
                case Command.UNPAIR:
                    self.unpair(decode_message(payload, UnpairCommand).device_id)
                case Command.SYNC_TIME:
                    decode_message(payload, SyncTimeCommand)
                    self.sync_time()
                case Command.RELOAD_CONFIG:
                    decode_message(payload, ReloadConfigCommand)
                    self.reload()
        except PayloadError as exc:
            logger.warning(
                "ignored an invalid command",
                extra={"topic": topic, "reason": f"{exc.field}: {exc.problem}"},
            )
        except PairingError as exc:
            logger.warning("command refused", extra={"topic": topic, "reason": exc.reason})
        else:
            logger.info("command handled", extra={"topic": topic})

    # -- events ------------------------------------------------------------------------

    def _publish_event(self, event: EventMessage) -> None:
        if self._publisher is not None:
            self._publisher.publish_event(event)

    def _emit(
        self,
        event: EventType,
        device_id: str | None,
        detail: dict[str, str | int | float | bool],
    ) -> None:
        self._publish_event(
            EventMessage(
                gateway_id=self.settings.gateway_id,
                at=self._clock(),
                event=event,
                device_id=device_id,
                detail=detail,
            )
        )

    # -- housekeeping --------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Follow the pairing store; record device states for the CLI."""
        last_record = float("-inf")
        while True:
            await asyncio.sleep(PAIRINGS_SYNC_SECONDS)
            try:
                self._sync_sessions()
                if time.monotonic() - last_record >= STATE_RECORD_SECONDS:
                    last_record = time.monotonic()
                    await asyncio.to_thread(self._record_states)
            except PairingError as exc:
                logger.error("pairing store failed", extra={"reason": exc.reason})

    def _record_states(self) -> None:
        for status in self.device_statuses():
            entry = (status.state, status.last_contact, status.battery_percent)
            if self._recorded.get(status.device_id) == entry:
                continue
            self.pairings.record_state(
                status.device_id,
                state=status.state,
                last_contact=status.last_contact,
                battery_percent=status.battery_percent,
            )
            self._recorded[status.device_id] = entry

    async def _watchdog(self, publisher_task: asyncio.Task[None]) -> None:
        """``WATCHDOG=1`` every half ``WatchdogSec`` while the loop and publisher live."""
        assert self._notifier.watchdog_seconds is not None
        interval = self._notifier.watchdog_seconds / 2
        while not publisher_task.done():
            self._notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        if not self._handle_signals or self._loop is None:
            return
        self._loop.add_signal_handler(signal.SIGTERM, self.stop)
        self._loop.add_signal_handler(signal.SIGINT, self.stop)
        self._loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _remove_signals(self) -> None:
        if not self._handle_signals or self._loop is None:
            return
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._loop.remove_signal_handler(signum)

    async def _shutdown(
        self, tasks: list[asyncio.Task[Any]], publisher_task: asyncio.Task[None] | None
    ) -> None:
        background = [*tasks]
        for task in (self._pairing_task, self._monitor_task):
            if task is not None:
                background.append(task)
        sessions = [running.task for running in self._running.values()]
        self._running.clear()
        await cancel_and_wait(
            (*background, *sessions), recancel_after_seconds=SHUTDOWN_RECANCEL_SECONDS
        )
        if publisher_task is not None and not publisher_task.done():
            publisher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher_task


async def serve(
    config_path: Path, *, simulate_patient: str | None = None, software_version: str | None = None
) -> None:
    """Run a gateway from its configuration file until SIGTERM/SIGINT.

    Args:
        config_path: the TOML or YAML configuration.
        simulate_patient: also simulate every device model, bound to this patient.
        software_version: reported in the status.

    Raises:
        SettingsError: the configuration is invalid.
        GatewayError: the gateway could not start or failed.
    """
    settings = load_settings(config_path)
    if simulate_patient is not None:
        settings = simulate_every_device(settings, simulate_patient)
    runtime = GatewayRuntime(
        settings,
        config_path=config_path,
        software_version=software_version,
        handle_signals=True,
    )
    await runtime.run()
