"""What a doctor reads: summaries of a patient's readings over a period.

:mod:`reports.summaries` is the one implementation of the clinical summaries (CGM,
meter glucose, blood pressure, weight, SpO₂, heart rate) that the alert rules, the triage
view, the pages and the printable report all use. Definitions, boundaries, sufficiency
rules and their sources are in ``docs/summaries.md``.
"""
