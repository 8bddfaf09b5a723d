"""``vitalgate demo``: a whole deployment on one machine, with simulated devices.

One command starts, on loopback only:

* an MQTT broker — the embedded amqtt broker on a free port, or the broker at
  ``--mqtt-url`` (Mosquitto in production);
* the care registry and the reading store — SQLite files under the data folder, or the
  URLs given (PostgreSQL, InfluxDB);
* a simulated home: a real gateway **process** (``python -m gateway``) whose simulated
  Bluetooth and serial devices speak the real protocols, for two patients;
* an ingest worker, which validates, checks ownership, stores and acknowledges;

and shows readings arriving per patient, as the alert engine would receive them (from
``accepted/``), until Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TextIO
from zoneinfo import ZoneInfo

from readings.codec import StatusMessage, decode_envelope, decode_message
from readings.errors import PayloadError
from readings.topics import ALL_ACCEPTED_FILTER, status_topic
from vitalgate.demo_view import KIND_LABELS, LiveState, format_values, render_view
from vitalgate.errors import VitalgateError

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from device_drivers.profiles import DeviceProfile
    from infra.mqtt import MqttClient
    from ingest.worker import IngestWorker
    from vitalgate.demo_alerts import DemoAlerts
    from vitalgate.demo_api import DemoLogins
    from vitalgate.embedded_broker import EmbeddedBroker

DEMO_GATEWAY_ID: Final = "demo-home-1"
DEMO_TIME_ZONE: Final = "Asia/Shanghai"
DEMO_HISTORY_SINCE: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The simulated meters are the demo patients' own: their whole memory is theirs (the
registry's ``history_since``; without it the history would wait in quarantine)."""
GATEWAY_STOP_TIMEOUT_SECONDS: Final = 30.0
"""The gateway finishes its current device exchanges and publishes its offline status."""
LIVE_REFRESH_PER_SECOND: Final = 2
SUBSCRIBE_TIMEOUT_SECONDS: Final = 10.0
OBSERVER_KEEPALIVE_SECONDS: Final = 60
"""paho's default keepalive, which the live view always used: it only watches."""


@dataclass(frozen=True, slots=True)
class DemoPatient:
    """A patient of the simulated home and the device models at their bedside."""

    patient_id: str
    display_name: str
    condition: str
    profiles: tuple[str, ...]


DEMO_PATIENTS: Final = (
    DemoPatient(
        "patient-001",
        "王秀英 Wang Xiuying",
        "2型糖尿病、高血压 type 2 diabetes, hypertension",
        (
            "roche_accu_chek_guide",
            "generic_cgms",
            "omron_hem7361t",
            "lifescan_onetouch_ultra2",
        ),
    ),
    DemoPatient(
        "patient-002",
        "李建国 Li Jianguo",
        "心力衰竭、慢阻肺 heart failure, COPD",
        ("and_uc352ble", "nonin_3230", "and_ut201ble", "polar_h10", "bayer_contour"),
    ),
)


class DemoError(VitalgateError):
    """The demo could not start; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``vitalgate demo`` runs against."""

    data_dir: Path
    mqtt_url: str | None = None
    mqtt_protocol: str | None = None
    store_url: str | None = None
    registry_url: str | None = None
    duration_seconds: float | None = None
    live: bool = True


class DemoStack:
    """The running parts of the demo; :meth:`close` stops them in reverse order."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.broker: EmbeddedBroker | None = None
        self.mqtt_url = options.mqtt_url or ""
        self.mqtt_protocol = options.mqtt_protocol or ("5" if options.mqtt_url else "3.1.1")
        self.store_url = options.store_url or f"sqlite:///{self.data_dir / 'readings.db'}"
        self.registry_url = options.registry_url or f"sqlite:///{self.data_dir / 'registry.db'}"
        self.worker: IngestWorker | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_log: BinaryIO | None = None
        self.observer: MqttClient | None = None
        self.state = LiveState(DEMO_PATIENTS, ZoneInfo(DEMO_TIME_ZONE))
        self._closers: list[Callable[[], None]] = []
        self.api_url = ""
        self.logins: DemoLogins | None = None
        self.alerts: DemoAlerts | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every part; on failure, stop what was started and raise DemoError."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._start_broker()
            profiles = self._profiles()
            self._prepare_registry(profiles)
            self._start_api()
            self._start_ingest()
            self._start_alerts()
            self._start_observer()
            self._start_gateway()
        except BaseException:
            self.close()
            raise

    def _start_broker(self) -> None:
        if self.options.mqtt_url:
            return
        from vitalgate.embedded_broker import EmbeddedBroker, EmbeddedBrokerError

        broker = EmbeddedBroker()
        try:
            broker.start()
        except EmbeddedBrokerError as exc:
            raise DemoError(str(exc)) from exc
        self.broker = broker
        self.mqtt_url = broker.url
        self._closers.append(broker.stop)

    def _profiles(self) -> dict[str, DeviceProfile]:
        from device_drivers.profiles import load_profiles

        profiles = {profile.profile_id: profile for profile in load_profiles()}
        for patient in DEMO_PATIENTS:
            for profile_id in patient.profiles:
                profile = profiles.get(profile_id)
                if profile is None or profile.simulator is None:
                    raise DemoError(f"device profile {profile_id!r} has no simulator")
        return profiles

    def _prepare_registry(self, profiles: dict[str, DeviceProfile]) -> None:
        """Register the home, its patients and their devices, as the clinic would."""
        from readings.identity import device_identity
        from registry.db import create_engine_for, session_scope, upgrade
        from registry.errors import AlreadyExists, RegistryError
        from registry.repositories import (
            DeviceRepository,
            GatewayRepository,
            PatientRepository,
        )

        try:
            upgrade(self.registry_url)
            engine = create_engine_for(self.registry_url)
        except RegistryError as exc:
            raise DemoError(f"registry {self.registry_url}: {exc}") from exc
        try:
            # A second run finds them registered: the transaction rolls back, the run goes on.
            with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
                GatewayRepository(session).add(DEMO_GATEWAY_ID, "simulated home")
            for patient in DEMO_PATIENTS:
                with contextlib.suppress(AlreadyExists), session_scope(engine) as session:
                    PatientRepository(session).add(
                        patient.patient_id, patient.display_name, DEMO_TIME_ZONE
                    )
                for profile_id in patient.profiles:
                    profile = profiles[profile_id]
                    assert profile.simulator is not None
                    device_id = device_identity(
                        profile.manufacturer, profile.model, profile.simulator.serial
                    )
                    with session_scope(engine) as session:
                        DeviceRepository(session).bind(
                            device_id,
                            DEMO_GATEWAY_ID,
                            patient.patient_id,
                            profile=profile_id,
                            history_since=DEMO_HISTORY_SINCE,
                        )
        except RegistryError as exc:
            raise DemoError(f"registry {self.registry_url}: {exc}") from exc
        finally:
            engine.dispose()

    def _start_api(self) -> None:
        """The API on a free loopback port, with the demo's care team and logins."""
        from vitalgate.demo_api import DemoApi, DemoLogins, seed_care_model

        self.logins = DemoLogins.load_or_create(self.data_dir)
        seed_care_model(
            self.registry_url, [patient.patient_id for patient in DEMO_PATIENTS], self.logins
        )
        api = DemoApi(
            self.registry_url,
            self.store_url,
            self.data_dir,
            self.logins,
            mqtt_url=self.mqtt_url,
            mqtt_protocol=self.mqtt_protocol,
        )
        try:
            api.start()
        except RuntimeError as exc:
            raise DemoError(str(exc)) from exc
        self.api_url = api.url
        self._closers.append(api.stop)

    def _start_ingest(self) -> None:
        from ingest.config import IngestConfigError, load_settings
        from ingest.stores import StoreError
        from ingest.worker import IngestError, open_worker
        from registry.errors import RegistryError

        try:
            settings = load_settings(
                mqtt_url=self.mqtt_url,
                mqtt_protocol=self.mqtt_protocol,
                store_url=self.store_url,
                registry_url=self.registry_url,
                client_id="vitalgate-demo-ingest",
                metrics_port=None,
                demo=True,
            )
            worker = open_worker(settings)
        except IngestConfigError as exc:
            raise DemoError(f"ingest configuration: {exc}") from exc
        except (StoreError, RegistryError) as exc:
            raise DemoError(f"ingest: {exc}") from exc
        try:
            worker.start()
        except IngestError as exc:
            worker.close()
            raise DemoError(f"ingest: {exc}") from exc
        self.worker = worker
        self._closers.append(worker.close)

    def _start_alerts(self) -> None:
        """The alert worker: evaluator, lifecycle and escalation, as `vitalgate alerts run`."""
        from vitalgate.demo_alerts import DemoAlerts

        alerts = DemoAlerts(
            self.registry_url, self.store_url, self.mqtt_url, self.mqtt_protocol, self.data_dir
        )
        alerts.start()
        self.alerts = alerts
        self._closers.append(alerts.stop)

    def open_alert_lines(self) -> list[str]:
        """The open alerts, one line each, for both views."""
        if self.alerts is None:
            return []
        return [
            f"{a.severity} {a.rule_id}  {a.patient_id}  {a.state}  "
            f"{self.state.local(a.fired_at) if a.fired_at else '-'}  {a.explanation}"
            for a in self.alerts.open_alerts()
        ]

    def _start_observer(self) -> None:
        """Subscribe to what the alert engine would receive, and to the gateway status."""
        from infra.mqtt import (
            ClientSettings,
            MqttError,
            MqttProtocol,
            connect,
            create_client,
            parse_mqtt_url,
        )

        settings = ClientSettings(
            endpoint=parse_mqtt_url(self.mqtt_url),
            client_id="vitalgate-demo-view",
            protocol=MqttProtocol(self.mqtt_protocol),
            keepalive_seconds=OBSERVER_KEEPALIVE_SECONDS,
        )
        try:
            client = create_client(settings)
        except MqttError as exc:
            raise DemoError(f"cannot set up the MQTT view: {exc}") from exc
        subscribed = threading.Event()
        status = status_topic(DEMO_GATEWAY_ID)

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe([(ALL_ACCEPTED_FILTER, 1), (status, 1)])

        def on_subscribe(*_: Any) -> None:
            subscribed.set()

        def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                if message.topic == status:
                    self.state.gateway_status = decode_message(
                        bytes(message.payload), StatusMessage
                    )
                else:
                    self.state.add(decode_envelope(bytes(message.payload)).readings)
            except PayloadError:
                return  # another sender's malformed message; ingest quarantines readings

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        try:
            connect(client, settings)
        except MqttError as exc:
            raise DemoError(f"cannot reach the MQTT broker at {self.mqtt_url}: {exc}") from exc
        client.loop_start()
        self.observer = client

        def stop_observer() -> None:
            client.disconnect()
            client.loop_stop()

        self._closers.append(stop_observer)
        if not subscribed.wait(SUBSCRIBE_TIMEOUT_SECONDS):
            raise DemoError(f"the MQTT broker at {self.mqtt_url} did not answer the subscription")

    def gateway_config(self) -> str:
        """The gateway's configuration file: the home's simulated devices and the broker."""
        lines = [
            f'gateway_id = "{DEMO_GATEWAY_ID}"',
            f'data_dir = "{self.data_dir / "gateway"}"',
            "demo = true",
            'log_level = "INFO"',
            "",
            "[mqtt]",
            f'url = "{self.mqtt_url}"',
            f'protocol = "{self.mqtt_protocol}"',
            "status_interval_seconds = 5.0",
            "",
            "[clock]",
            f'time_zone = "{DEMO_TIME_ZONE}"',
        ]
        for patient in DEMO_PATIENTS:
            for profile_id in patient.profiles:
                lines += [
                    "",
                    "[[simulators]]",
                    f'profile = "{profile_id}"',
                    f'patient_id = "{patient.patient_id}"',
                ]
        return "\n".join(lines) + "\n"

    def _start_gateway(self) -> None:
        config = self.data_dir / "gateway.toml"
        config.write_text(self.gateway_config(), encoding="utf-8")
        self.gateway_log = (self.data_dir / "gateway.log").open("ab")
        # A session of its own: Ctrl-C reaches the demo, which then stops the gateway
        # gracefully (SIGTERM) after the rest, instead of everything dying at once.
        self.gateway = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, our module
            [sys.executable, "-m", "gateway", "--config", str(config)],
            stdout=self.gateway_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._closers.append(self._stop_gateway)

    def _stop_gateway(self) -> None:
        process = self.gateway
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(GATEWAY_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.gateway_log is not None:
            self.gateway_log.close()

    # -- run and stop --------------------------------------------------------------------

    def gateway_failed(self) -> int | None:
        """The gateway's exit code if it stopped on its own."""
        return self.gateway.poll() if self.gateway is not None else None

    def stored_count(self) -> int:
        """Readings stored by ingest during this run."""
        return 0 if self.worker is None else _total(self.worker.metrics.readings_stored)

    def quarantined_count(self) -> int:
        """Readings quarantined by ingest during this run, whatever the reason."""
        return 0 if self.worker is None else _total(self.worker.metrics.readings_quarantined)

    def close(self) -> None:
        """Stop the gateway, the view, ingest and the broker (reverse order of start)."""
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()


def _total(counter: Any) -> int:
    """The sum of a Prometheus counter over all its label values."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


def _header(stack: DemoStack) -> str:
    broker = (
        f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {stack.mqtt_url}"
        if stack.broker is not None
        else f"MQTT broker {stack.mqtt_url} (MQTT {stack.mqtt_protocol})"
    )
    return (
        f"{broker}\n"
        f"reading store  {stack.store_url}\n"
        f"registry       {stack.registry_url}\n"
        f"gateway log    {stack.data_dir / 'gateway.log'}\n"
        f"web app        {stack.api_url}/  (doctor, nurse, patient and family pages)\n"
        f"API            {stack.api_url}/api/v1/docs  (logins, passwords and TOTP secrets in "
        f"{stack.logins.path if stack.logins else '-'}; SMS links in "
        f"{stack.data_dir / 'sms.jsonl'})\n"
        f"notifications  {stack.data_dir / 'notifications.jsonl'} (what alerts would send)\n"
        f"times          the patients' wall clock, {DEMO_TIME_ZONE} (not this machine's)\n"
        "Press Ctrl-C to stop · 按 Ctrl-C 停止"
    )


def _wait(stack: DemoStack, deadline: float | None) -> Iterator[None]:
    """Yields every half second until the deadline, Ctrl-C, or the gateway dying."""
    while deadline is None or time.monotonic() < deadline:
        code = stack.gateway_failed()
        if code is not None:
            raise DemoError(
                f"the gateway process stopped (exit {code}); see {stack.data_dir / 'gateway.log'}"
            )
        if stack.worker is not None and stack.worker.failed:
            raise DemoError("the ingest worker stopped; see the messages above")
        yield
        time.sleep(0.5)


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> None:
    """Run the demo until Ctrl-C (or ``options.duration_seconds``).

    Raises:
        DemoError: a part could not start or stopped unexpectedly.
    """
    stack = DemoStack(options)
    stack.start()
    deadline = time.monotonic() + options.duration_seconds if options.duration_seconds else None
    try:
        if options.live:
            _run_live(stack, deadline)
        else:
            _run_plain(stack, deadline, out)
    except KeyboardInterrupt:
        pass
    finally:
        stack.close()
    print("VitalGate demo stopped · 演示已停止", file=out, flush=True)


def _run_live(stack: DemoStack, deadline: float | None) -> None:
    from rich.live import Live

    header = _header(stack)

    def view() -> Any:
        return render_view(
            stack.state,
            header,
            stack.stored_count,
            stack.quarantined_count,
            stack.open_alert_lines,
        )

    with Live(view(), refresh_per_second=LIVE_REFRESH_PER_SECOND, screen=False) as live:
        for _ in _wait(stack, deadline):
            live.update(view())


def _run_plain(stack: DemoStack, deadline: float | None, out: TextIO) -> None:
    print(_header(stack), file=out, flush=True)
    shown = 0
    alerts_shown: set[str] = set()
    for _ in _wait(stack, deadline):
        with stack.state.lock:
            latest = sorted(
                (item.reading for item in stack.state.latest.values()),
                key=lambda reading: reading.measured_at,
            )
            received = stack.state.received
        if received != shown:
            shown = received
            for reading in latest[-5:]:
                print(
                    f"{stack.state.local(reading.measured_at)}  {reading.patient_id}  "
                    f"{KIND_LABELS[reading.kind]}: {format_values(reading)}",
                    file=out,
                )
            print(
                f"-- accepted {received}, stored {stack.stored_count()}, "
                f"quarantined {stack.quarantined_count()} "
                f"({stack.state.local(datetime.now(UTC))} {DEMO_TIME_ZONE})",
                file=out,
                flush=True,
            )
        for line in stack.open_alert_lines():
            key = line.split("  ")[0] + line.split("  ")[1]
            if key not in alerts_shown:
                alerts_shown.add(key)
                print(f"ALERT {line}", file=out, flush=True)


def default_data_dir() -> Path:
    """``./vitalgate-data``, or ``$VITALGATE_DATA_DIR``."""
    return Path(os.environ.get("VITALGATE_DATA_DIR", "vitalgate-data"))
