"""Test harness: real Mosquitto, InfluxDB and PostgreSQL for integration and fault tests.

See :mod:`tests.harness.services`; the fixtures are in ``tests/conftest.py``.
"""
