"""The VitalGate API (``/api/v1``): who may see which patient, and every access on record.

:func:`dashboard_api.app.create_app` builds the FastAPI application from injected parts (the
registry engine, the reading store, a clock), so tests and ``vitalgate serve`` run the same
code. Authorization is one pure function (:func:`dashboard_api.authz.decide`) fed the facts
:mod:`registry.access` reads; every route that names a patient goes through the one
dependency in :mod:`dashboard_api.deps` that applies it, answers 404 for a patient that is
not the caller's and writes the audit row.
"""
