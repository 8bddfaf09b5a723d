"""The care registry: gateways, patients, devices and their pairings, quarantine, audit.

SQLAlchemy 2 models (:mod:`registry.models`) migrated by Alembic (:mod:`registry.db`),
repositories for operator actions (:mod:`registry.repositories`), the ownership check
ingest runs on every reading (:mod:`registry.ownership`) and the quarantine store
(:mod:`registry.quarantine`). SQLite by default, PostgreSQL in production.
"""
