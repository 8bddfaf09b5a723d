"""The alert engine: clinical rules over readings, an alert lifecycle, escalation, notifiers.

The parts meet in :mod:`alerts.model`: rules (pure functions of readings, targets and a
clock) produce :class:`~alerts.model.Finding` values; the lifecycle turns findings into
alerts and their events; escalation and notifiers act on alerts.
"""
