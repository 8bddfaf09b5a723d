"""Transports: the adapters between drivers and the libraries that reach devices.

``ble`` wraps bleak, ``serial`` wraps pyserial. Drivers never import these modules; they
receive an object implementing :class:`device_drivers.base.GattTransport` or
:class:`device_drivers.base.SerialTransport`.
"""
