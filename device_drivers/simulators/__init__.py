"""Simulated devices: the same protocols as real meters, scripted by a scenario.

Serial meters run on a pseudo-terminal pair; BLE devices run on a virtual controller.
Every simulator follows a :class:`~device_drivers.simulators.scenario.Scenario`, so tests
and the demo can script values over time, clock skew, memory wrap, link drops and
corrupted frames.
"""
