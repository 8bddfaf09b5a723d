"""Notifiers: one adapter per channel, each with recoverable vs permanent failures.

Every send carries an idempotency key (the registry's notification key) so a retry or a
re-run after a crash is recognisable downstream, and answers with a delivery receipt.
"""
