"""Polls Modbus meters on one bus (RTU serial line or TCP) on their schedules and hands the raw
register words on; decoding is the decoder service's job (decoders.modbus.decode_registers).

A meter that does not answer is counted and logged and tried again at its next slot; the bus is
reconnected when the link drops. Meters on one RS-485 line are polled one after another (half duplex).
"""

from __future__ import annotations

import heapq
import threading
import time

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from decoders.modbus.profiles import PROFILES
from ingest.config import ModbusBusConfig, ModbusMeterConfig
from ingest.counters import MODBUS_POLLS
from ingest.frames import FrameSink, ModbusRead
from meterflow.logs import get_logger

log = get_logger(__name__)


class ModbusPoller:
    def __init__(self, bus: ModbusBusConfig, sink: FrameSink, gateway_id: str = "") -> None:
        self.bus = bus
        self.sink = sink
        self.gateway_id = gateway_id
        self.name = f"modbus-{bus.name}"
        self.client: ModbusSerialClient | ModbusTcpClient = self._make_client()

    def _make_client(self) -> ModbusSerialClient | ModbusTcpClient:
        bus = self.bus
        if bus.transport == "tcp":
            return ModbusTcpClient(bus.host, port=bus.tcp_port, timeout=bus.timeout_s, retries=1)
        return ModbusSerialClient(bus.port, baudrate=bus.baudrate, parity=bus.parity, stopbits=bus.stopbits,
                                  bytesize=bus.bytesize, timeout=bus.timeout_s, retries=1)

    def poll(self, meter: ModbusMeterConfig) -> list[ModbusRead]:
        """Read every block of the meter's profile; raises ModbusException / OSError on failure."""
        if not self.client.connected and not self.client.connect():
            raise ConnectionError(f"cannot connect to Modbus bus {self.bus.name}")
        reads = []
        for block in PROFILES[meter.profile].blocks:
            if block.function == 3:
                resp = self.client.read_holding_registers(block.address, count=block.count, device_id=meter.unit)
            else:
                resp = self.client.read_input_registers(block.address, count=block.count, device_id=meter.unit)
            if resp.isError():
                raise ModbusException(f"device {meter.unit} answered {resp}")
            words = tuple(int(w) for w in resp.registers[: block.count])
            if len(words) != block.count:
                raise ModbusException(f"device {meter.unit} returned {len(words)} of {block.count} registers")
            reads.append(ModbusRead(meter.meter_id, meter.profile, block.address, words, time.time()))
        return reads

    def run(self, stop: threading.Event) -> None:
        """Poll each meter every interval_s, the first time right away."""
        now = time.monotonic()
        due = [(now, i) for i in range(len(self.bus.meters))]
        heapq.heapify(due)
        try:
            while due and not stop.is_set():
                at, i = heapq.heappop(due)
                if stop.wait(max(0.0, at - time.monotonic())):
                    break
                meter = self.bus.meters[i]
                try:
                    for read in self.poll(meter):
                        self.sink.frame(read)
                    MODBUS_POLLS.labels("ok").inc()
                except (ModbusException, OSError, ConnectionError) as exc:
                    MODBUS_POLLS.labels("error").inc()
                    self.sink.bad(self.name, "modbus_error", f"{meter.meter_id}: {exc}")
                    self.client.close()  # type: ignore[no-untyped-call]
                # keep the schedule (no drift); skip slots missed while the bus was stuck
                nxt = at + meter.interval_s
                heapq.heappush(due, (max(nxt, time.monotonic()), i))
        finally:
            self.client.close()  # type: ignore[no-untyped-call]
