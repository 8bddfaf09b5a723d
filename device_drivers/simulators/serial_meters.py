"""Serial glucose-meter simulators on a pseudo-terminal pair.

Each simulator opens a pty, serves the master side from a thread and publishes the slave
path as :attr:`PtyMeterSimulator.port`; a driver opens that path with pyserial exactly as
it opens a USB-serial adapter. Both follow a
:class:`~device_drivers.simulators.scenario.Scenario`: records appear in memory at their
offsets, the clock runs with the scenario's skew, memory wraps and clears, chosen frames go
out damaged and chosen transfers stop mid-way (the link "drops": the meter falls silent
until the host starts over).

* :func:`start_onetouch_ultra2` — OneTouch Ultra 2 commands ``DM?``, ``DM@``, ``DMF``,
  ``DMT``, ``DMP``; frame *k* of the scenario is line *k* of a dump (the header is 1).
* :func:`start_contour` — Contour ASTM transfers, started by the host's EOT; frame *k* is
  the *k*-th frame of a transfer (the H record is 1); NAKed frames are sent again, up to
  E1381's six attempts.
"""

from __future__ import annotations

import abc
import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable
from datetime import datetime
from enum import Enum, auto
from types import TracebackType
from typing import Final, Self

from device_drivers.serial_protocols import astm
from device_drivers.serial_protocols import onetouch_ultra2 as otu2
from device_drivers.simulators.scenario import (
    DeviceClock,
    Scenario,
    ScenarioRecord,
    local_wall_clock,
)
from readings.model import Kind
from readings.units import Unit, mmol_per_l_to_mg_per_dl

Clock = Callable[[], datetime]

READ_CHUNK_BYTES: Final = 4096
SENDER_GIVE_UP_ATTEMPTS: Final = 6
"""E1381: a sender stops retrying a frame after six NAKs and sends EOT."""
_OTU2_LO_VALUE_MG_DL: Final = otu2.LO_LIMIT_MG_PER_DL - 1
_OTU2_HI_VALUE_MG_DL: Final = otu2.HI_LIMIT_MG_PER_DL + 1
_OTU2_MEAL: Final = {"preprandial": otu2.Meal.BEFORE, "postprandial": otu2.Meal.AFTER}
_OTU2_COMMENT: Final = {name: code for code, name in otu2.COMMENT_NAMES.items()}
_ASTM_MEAL_MARKER: Final = {"preprandial": "B", "postprandial": "A"}


class _Stopped(Exception):
    """The simulator is closing while a write waits."""


class PtyMeterSimulator(abc.ABC):
    """Common machinery: the pty pair, the serving thread, link drops.

    Args:
        scenario: what the meter holds and does.
        clock: real local time (naive); injected so tests control time.
        name: thread name, for debugging.
    """

    def __init__(self, scenario: Scenario, clock: Clock, name: str) -> None:
        self.scenario = scenario
        self.device_clock = DeviceClock(scenario, clock)
        self._master, self._slave = os.openpty()
        # Raw until the driver configures the port: no echo, no CR/LF translation.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._transfers = 0
        self._transfer_budget: int | None = None
        self._closed = False

    def start(self) -> None:
        """Start serving the port."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the pty; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join()
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def transfers(self) -> int:
        """How many data transfers (dumps, ASTM sessions) have started."""
        return self._transfers

    def _serve(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._master, self._wake_read], [], [])
                if self._wake_read in ready:
                    return
                try:
                    data = os.read(self._master, READ_CHUNK_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                self._on_bytes(data)
        except _Stopped:
            return

    @abc.abstractmethod
    def _on_bytes(self, data: bytes) -> None:
        """Handle bytes the host sent."""

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            ready, writable, _ = select.select([self._wake_read], [self._master], [])
            if ready:
                raise _Stopped
            if writable:
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    continue
                view = view[written:]

    def _begin_transfer(self) -> None:
        self._transfers += 1
        self._transfer_budget = self.scenario.drop_after_bytes(self._transfers)

    def _send_transfer_bytes(self, data: bytes) -> bool:
        """Send part of a transfer; ``False`` once the link has dropped."""
        budget = self._transfer_budget
        if budget is None:
            self._write(data)
            return True
        self._write(data[:budget])
        self._transfer_budget = budget - min(budget, len(data))
        return len(data) <= budget

    def _stored_glucose(self) -> list[ScenarioRecord]:
        stored = self.scenario.stored_at(self.device_clock.elapsed_seconds())
        return [record for record in stored if record.kind is Kind.GLUCOSE]


def _damage(data: bytes, position: int) -> bytes:
    """Flip the low bit of one printable byte (keeps it printable, breaks the checksum)."""
    damaged = bytearray(data)
    damaged[position] ^= 0x01
    return bytes(damaged)


class OneTouchUltra2Simulator(PtyMeterSimulator):
    """A OneTouch Ultra 2 on a pty (see :func:`start_onetouch_ultra2`)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        serial_number: str,
        firmware: str,
        display_unit: Unit,
        clock: Clock,
    ) -> None:
        super().__init__(scenario, clock, name=f"otu2-sim-{serial_number}")
        self.serial_number = serial_number
        self.firmware = firmware
        self.display_unit = display_unit
        self._pending = bytearray()

    def _on_bytes(self, data: bytes) -> None:
        self._pending.extend(data)
        while b"\r" in self._pending:
            line, _, rest = bytes(self._pending).partition(b"\r")
            self._pending = bytearray(rest)
            command = line.strip(b"\x11\n ").decode("ascii", "replace")
            if command:
                self._handle(command)

    def _handle(self, command: str) -> None:
        clock = self.device_clock
        if command == otu2.Command.FIRMWARE:
            self._write(otu2.encode_line(otu2.encode_firmware(self.firmware)))
        elif command == otu2.Command.SERIAL_NUMBER:
            self._write(otu2.encode_line(otu2.encode_serial_number(self.serial_number)))
        elif command == otu2.Command.READ_CLOCK:
            self._write(otu2.encode_line(otu2.encode_clock("F", clock.device_now())))
        elif command.startswith(otu2.Command.SET_CLOCK):
            try:
                wanted = datetime.strptime(  # noqa: DTZ007 - meter local time
                    command.removeprefix(otu2.Command.SET_CLOCK), "%m/%d/%y %H:%M:%S"
                )
            except ValueError:
                return  # the meter ignores a malformed command
            clock.set_device_time(wanted)
            self._write(otu2.encode_line(otu2.encode_clock("T", wanted)))
        elif command == otu2.Command.DUMP:
            self._dump()

    def _record(self, record: ScenarioRecord) -> otu2.OneTouchRecord:
        value = round(mmol_per_l_to_mg_per_dl(record.values["glucose"]))
        if "result_low" in record.flags:
            value = min(value, _OTU2_LO_VALUE_MG_DL)
        if "result_high" in record.flags:
            value = max(value, _OTU2_HI_VALUE_MG_DL)
        meal = _OTU2_MEAL.get(str(record.context.get("meal", "")), otu2.Meal.NONE)
        comment = _OTU2_COMMENT.get(str(record.context.get("comment", "")), 0)
        return otu2.OneTouchRecord(
            device_time=self.device_clock.device_time_of(record).replace(microsecond=0),
            value_mg_dl=value,
            control_solution="control_solution" in record.flags,
            parity_error="communication_error" in record.flags,
            meal=meal,
            comment_code=comment,
        )

    def _dump(self) -> None:
        self._begin_transfer()
        # Newest first, as the meter lists its memory (Tidepool's recorded dump).
        records = [self._record(r) for r in reversed(self._stored_glucose())]
        payloads = [otu2.encode_dump_header(len(records), self.serial_number, self.display_unit)]
        payloads += [otu2.encode_record(record) for record in records]
        for number, payload in enumerate(payloads, start=1):
            line = otu2.encode_line(payload)
            if self.scenario.is_corrupted(number, self._transfers):
                line = _damage(line, next(i for i, c in enumerate(payload) if c.isdigit()))
            if not self._send_transfer_bytes(line):
                return


class _SenderState(Enum):
    IDLE = auto()
    AWAIT_ESTABLISH_REPLY = auto()
    AWAIT_FRAME_REPLY = auto()


class ContourSimulator(PtyMeterSimulator):
    """A Contour meter sending ASTM transfers on a pty (see :func:`start_contour`)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        product_code: str,
        serial_number: str,
        versions: tuple[str, ...],
        unit: Unit,
        clock: Clock,
    ) -> None:
        super().__init__(scenario, clock, name=f"contour-sim-{serial_number}")
        self.product_code = product_code
        self.serial_number = serial_number
        self.versions = versions
        self.unit = unit
        self._state = _SenderState.IDLE
        self._frames: list[bytes] = []
        self._index = 0
        self._attempts = 0
        self.frames_resent = 0
        """Frames sent again after a NAK, over the simulator's life."""

    def transfer_records(self) -> list[str]:
        """The E1394 records a transfer started now sends (H, P, R…, L)."""
        stored = self._stored_glucose()
        header = astm.AstmHeader(
            delimiters=astm.Delimiters(),
            product_code=self.product_code,
            versions=self.versions,
            serial_number=self.serial_number,
            sku="7403-",
            settings={
                "A": "1",
                "C": "63",
                "G": "1",
                "I": "0200",
                "R": "0",
                "S": "1",
                "U": "1" if self.unit is Unit.MMOL_PER_L else "0",
                "V": "10600",
                "Z": "1",
            },
            record_count=len(stored),
            meter_time=self.device_clock.device_now(),
        )
        return [
            astm.encode_header(header),
            astm.encode_patient(),
            *(astm.encode_result(self._result(seq, r)) for seq, r in enumerate(stored, start=1)),
            astm.encode_terminator(),
        ]

    def _result(self, seq: int, record: ScenarioRecord) -> astm.AstmResult:
        glucose = record.values["glucose"]
        if self.unit is Unit.MMOL_PER_L:
            value, unit_text = f"{glucose:.1f}", "mmol/L"
        else:
            value, unit_text = str(round(mmol_per_l_to_mg_per_dl(glucose))), "mg/dL"
        markers = []
        meal_marker = _ASTM_MEAL_MARKER.get(str(record.context.get("meal", "")))
        if meal_marker:
            markers.append(meal_marker)
        for flag, marker in (("result_high", ">"), ("result_low", "<"), ("control_solution", "E")):
            if flag in record.flags:
                markers.append(marker)
        return astm.AstmResult(
            seq=seq,
            test="Glucose",
            value=value,
            unit=unit_text,
            reference_method="P",
            markers="/".join(markers),
            timestamp=self.device_clock.device_time_of(record),
        )

    def _on_bytes(self, data: bytes) -> None:
        for byte in data:
            self._on_byte(bytes([byte]))

    def _on_byte(self, byte: bytes) -> None:
        if byte == astm.EOT:
            # The host asks for a transfer (and abandons any transfer under way).
            self._begin_transfer()
            self._frames = astm.frames_for_records(self.transfer_records())
            self._index = 0
            self._attempts = 0
            self._state = _SenderState.AWAIT_ESTABLISH_REPLY
            self._send(astm.ENQ)
        elif self._state is _SenderState.AWAIT_ESTABLISH_REPLY:
            if byte == astm.ACK:
                self._send_frame()
            elif byte == astm.NAK:
                self._state = _SenderState.IDLE
        elif self._state is _SenderState.AWAIT_FRAME_REPLY:
            if byte == astm.ACK:
                self._index += 1
                self._attempts = 0
                if self._index == len(self._frames):
                    self._state = _SenderState.IDLE
                    self._send(astm.EOT)
                else:
                    self._send_frame()
            elif byte == astm.NAK:
                if self._attempts >= SENDER_GIVE_UP_ATTEMPTS:
                    self._state = _SenderState.IDLE
                    self._send(astm.EOT)
                else:
                    self.frames_resent += 1
                    self._send_frame()

    def _send(self, data: bytes) -> None:
        if not self._send_transfer_bytes(data):
            self._state = _SenderState.IDLE  # the link dropped: silent until the next EOT

    def _send_frame(self) -> None:
        self._attempts += 1
        frame = self._frames[self._index]
        if self.scenario.is_corrupted(self._index + 1, self._attempts):
            frame = _damage(frame, 2)  # first text byte
        self._state = _SenderState.AWAIT_FRAME_REPLY
        self._send(frame)


def start_onetouch_ultra2(
    scenario: Scenario,
    *,
    serial_number: str = "GMF600DCY",
    firmware: str = "P02.00.00 30/08/06",
    display_unit: Unit = Unit.MG_PER_DL,
    clock: Clock = local_wall_clock,
) -> OneTouchUltra2Simulator:
    """Start a simulated OneTouch Ultra 2; open ``.port`` with the driver, ``.close()`` it.

    Args:
        scenario: records and faults.
        serial_number: 9 characters ending in ``Y`` (an Ultra 2).
        firmware: the ``DM?`` answer.
        display_unit: the unit in the dump header (values are mg/dL regardless).
        clock: real local time (naive).
    """
    simulator = OneTouchUltra2Simulator(
        scenario,
        serial_number=serial_number,
        firmware=firmware,
        display_unit=display_unit,
        clock=clock,
    )
    simulator.start()
    return simulator


def start_contour(
    scenario: Scenario,
    *,
    product_code: str = "Bayer7390",
    serial_number: str = "7390-2336773",
    versions: tuple[str, ...] = ("01.24", "01.04", "09.02.20"),
    unit: Unit = Unit.MG_PER_DL,
    clock: Clock = local_wall_clock,
) -> ContourSimulator:
    """Start a simulated Contour USB speaking ASTM; open ``.port``, ``.close()`` it.

    Args:
        scenario: records and faults.
        product_code: the H record's product code (``Bayer7390`` is a Contour USB).
        serial_number: the H record's serial.
        versions: digital, analog and AGP versions.
        unit: the unit of the result records (and the ``U=`` setting).
        clock: real local time (naive).
    """
    simulator = ContourSimulator(
        scenario,
        product_code=product_code,
        serial_number=serial_number,
        versions=versions,
        unit=unit,
        clock=clock,
    )
    simulator.start()
    return simulator
