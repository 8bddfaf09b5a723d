"""Device drivers: bytes ↔ measurements for home medical devices.

Pure parsers (``device_drivers.gatt``, ``device_drivers.serial_protocols``) turn recorded
bytes into :class:`~device_drivers.measurement.Measurement`; drivers move bytes through a
narrow transport (BLE through bleak, serial through pyserial) with one lifecycle; the
simulators speak the same protocols so tests and the demo exercise the same code as a
real device.
"""
