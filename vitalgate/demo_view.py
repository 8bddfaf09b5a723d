"""The terminal view of ``vitalgate demo``: the latest reading per patient and measurement,
the gateway's state, the store's counts and the open alerts, drawn with rich.

Kept apart from the demo's stack (:mod:`vitalgate.demo`) so that what is shown and how the
parts are started change separately.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from readings.codec import GatewayState, StatusMessage
from readings.model import Kind, Reading

if TYPE_CHECKING:
    from vitalgate.demo import DemoPatient

KIND_LABELS: Final = {
    Kind.GLUCOSE: "血糖 glucose",
    Kind.CGM_GLUCOSE: "动态血糖 CGM",
    Kind.BLOOD_PRESSURE: "血压 blood pressure",
    Kind.HEART_RATE: "心率 heart rate",
    Kind.SPO2: "血氧 SpO₂",
    Kind.WEIGHT: "体重 weight",
    Kind.BODY_TEMPERATURE: "体温 temperature",
}


def format_values(reading: Reading) -> str:
    """A reading's values as a clinician reads them (mmol/L, mmHg …), with HI/LO marks."""
    values = reading.values.as_dict()
    kind = reading.kind
    text: str
    if kind in (Kind.GLUCOSE, Kind.CGM_GLUCOSE):
        text = f"{values['glucose']:.1f} mmol/L"
        if "result_high" in reading.flags:
            text = f"HI ≥ {text}"
        elif "result_low" in reading.flags:
            text = f"LO ≤ {text}"
    elif kind is Kind.BLOOD_PRESSURE:
        text = f"{values['systolic']:.0f}/{values['diastolic']:.0f} mmHg"
        if "pulse" in values:
            text += f"  ♥ {values['pulse']:.0f}/min"
    elif kind is Kind.HEART_RATE:
        text = f"{values['heart_rate']:.0f} /min"
    elif kind is Kind.SPO2:
        text = f"{values['spo2']:.0f} %"
        if "pulse" in values:
            text += f"  ♥ {values['pulse']:.0f}/min"
    elif kind is Kind.WEIGHT:
        text = f"{values['weight']:.1f} kg"
    else:
        text = f"{values['temperature']:.1f} °C"
    return text


@dataclass
class _Latest:
    reading: Reading
    count: int = 1


@dataclass
class LiveState:
    """What the terminal view shows; fed from MQTT callbacks (thread-safe)."""

    patients: Sequence[DemoPatient]
    time_zone: ZoneInfo
    latest: dict[tuple[str, Kind], _Latest] = field(default_factory=dict)
    gateway_status: StatusMessage | None = None
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_reading: threading.Event = field(default_factory=threading.Event)

    def add(self, readings: Sequence[Reading]) -> None:
        """Record readings accepted by ingest."""
        with self.lock:
            for reading in readings:
                key = (reading.patient_id, reading.kind)
                current = self.latest.get(key)
                if current is None:
                    self.latest[key] = _Latest(reading)
                else:
                    current.count += 1
                    if reading.measured_at >= current.reading.measured_at:
                        current.reading = reading
                self.received += 1
        if readings:
            self.first_reading.set()

    def local(self, moment: datetime) -> str:
        """A UTC time as the patient's wall clock."""
        return moment.astimezone(self.time_zone).strftime("%m-%d %H:%M:%S")


def render_view(
    state: LiveState,
    header: str,
    stored: Callable[[], int],
    quarantined: Callable[[], int],
    alerts: Callable[[], list[str]] = list,
) -> Any:
    """The whole view as one rich renderable: header, gateway and counts, alerts, readings."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    table = Table(expand=True, title="Readings accepted by ingest, per patient · 按患者显示")
    table.add_column("patient 患者")
    table.add_column("measurement 项目")
    table.add_column("latest 最新", justify="right")
    table.add_column(f"measured 测量时间 ({state.time_zone.key})")
    table.add_column("count 次数", justify="right")
    with state.lock:
        for patient in state.patients:
            rows = sorted(
                (latest for (pid, _), latest in state.latest.items() if pid == patient.patient_id),
                key=lambda latest: list(Kind).index(latest.reading.kind),
            )
            name = f"{patient.display_name}\n[dim]{patient.condition}[/dim]"
            if not rows:
                table.add_row(name, "[dim]waiting for readings…[/dim]", "", "", "")
            for index, latest in enumerate(rows):
                reading = latest.reading
                flags = [flag for flag in reading.flags if flag != "clock_corrected"]
                value = format_values(reading)
                if flags:
                    value += f"\n[yellow]{', '.join(flags)}[/yellow]"
                table.add_row(
                    name if index == 0 else "",
                    KIND_LABELS[reading.kind],
                    value,
                    state.local(reading.measured_at),
                    str(latest.count),
                )
            table.add_section()
        status = state.gateway_status
    if status is None:
        gateway_line = "gateway: [dim]waiting for its status…[/dim]"
    else:
        colour = "green" if status.state is GatewayState.ONLINE else "red"
        gateway_line = (
            f"gateway {status.gateway_id}: [{colour}]{status.state.value}[/{colour}]  "
            f"outbox {status.queue_depth or 0} unacknowledged  "
            f"devices {len(status.devices)}"
        )
    summary = (
        f"{gateway_line}\n"
        f"stored {stored()} · quarantined {quarantined()} · accepted this run {state.received}"
    )
    alert_lines = alerts()
    alert_panel = Panel(
        "\n".join(alert_lines) if alert_lines else "[dim]no open alert · 暂无预警[/dim]",
        title="Open alerts · 未处理预警",
        border_style="red" if alert_lines else "green",
    )
    return Group(
        Panel(header, title="VitalGate demo · 演示", border_style="cyan"),
        Panel(summary),
        alert_panel,
        table,
    )
