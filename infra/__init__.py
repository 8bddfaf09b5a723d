"""Adapters to external systems shared by the edge and the central side.

``infra`` may import the standard library, its third-party client libraries and ``readings``;
it never imports ``gateway``, ``ingest`` or ``registry``, so both sides can use it.
"""
