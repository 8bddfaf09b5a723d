"""The edge runtime: from a paired device to the clinic, durably.

A reading a device handed over is committed to the outbox (:mod:`gateway.outbox`,
SQLite WAL with ``synchronous=FULL``) before anything else happens, and leaves it only
when ingest acknowledges it end to end. The publisher (:mod:`gateway.publisher`) drains
the outbox into MQTT in bounded batches, re-publishes what was not acknowledged in time
(with the same reading ids), keeps a retained status that is also its will, and carries
the gateway's events. Device sessions, pairing and configuration build on these.

The gateway never imports fastapi, pandas, SQLAlchemy or influxdb-client: it runs on a
Raspberry Pi class box with the ``[gateway]`` extra only.
"""
