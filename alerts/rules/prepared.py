"""A patient's history prepared once, and each rule given only the span it reads.

The straightforward engine hands every rule the whole window (the rule set's lookback,
15 days with the default rules) and every rule filters and walks it on every evaluation.
A CGM patient has ≈ 4,300 readings in that window and is evaluated ≈ 5 times per reading,
so that costs time quadratic in the history. Here the history is sorted once, split by
reading kind once (and, per threshold rule, into the readings it could match), and each
evaluation finds its window by bisection. Each rule kind then receives only the readings
its decision depends on, so the findings are the same as over the whole window:

* threshold: the newest relevant reading and every relevant reading within the longest
  tier's ``within`` before it (the confirmation run or mean); the late review reads the
  relevant arrivals anywhere in the window; the 7-day event count comes from a per-tier
  running count;
* window_mean / cgm_summary: their own window (``window``, ``days``) before the instant;
* weight_change: the newest weight and those within ``over`` + ``tolerance`` before it;
* moving_average_rise: the ``2 × days`` local days before the instant (+ a day's margin);
* forecast_ar2: the newest CGM reading and the 30 minutes before it (AR2's four 5-minute
  buckets reach back 17.5 min and stop at the first reading outside them);
* stale: the newest reading of its kinds; missing: the newest reading of each kind (the
  start of monitoring comes from the context's ``monitoring_since``, or is a first reading,
  which the newest of its kind never precedes);
* gateway_offline, plausibility, clinic_outage read no readings.

``tests/alerts/test_rules_prepared.py`` compares this with the straightforward engine on
random histories.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alerts.model import Finding
from alerts.rules.common import Context, kind_of, sort_readings
from alerts.rules.model import Rule, Tier
from alerts.rules.thresholds import (
    EVENT_WINDOW,
    is_relevant,
    rule_fields,
    threshold_findings,
    tier_matches,
)
from readings.model import Kind, Reading

FORECAST_REACH: Final = timedelta(minutes=30)
"""Readings before the newest CGM reading that G6 is given: AR2's buckets span 17.5 min
back (four 5-minute buckets offset by 2.5 min), so 30 min holds them and the first
reading outside them, where the bucketing stops."""

LOCAL_DAY_MARGIN: Final = timedelta(days=2)
"""H2 counts local calendar days; a day and a DST hour of margin more than it needs."""

_MAX_TIER_KEYS: Final = 1_024
"""Tiers remembered per history; a patient's overrides build new tier objects on each
evaluation, so the memo is emptied rather than grown without bound."""


RelevantKey = tuple[frozenset[Kind], frozenset[str], tuple[str, ...]]
"""A threshold rule's kinds, excluded flags and fields: what decides its relevant readings."""


@dataclass(frozen=True, slots=True)
class _View:
    """Positions (into the history) of some of its readings, oldest first, and their times."""

    index: list[int]
    times: list[datetime]

    def bounds(self, lo: int, hi: int) -> tuple[int, int]:
        """The view's slice for the history's window ``[lo, hi)``."""
        return bisect_left(self.index, lo), bisect_left(self.index, hi)


class PreparedHistory:
    """One patient's readings sorted once (oldest first, ties by id), with lazily built
    per-kind and per-rule views and per-tier running counts of matching readings.

    Immutable once built: the backtest builds one per patient for the whole run; the
    engine builds one per call from the window it is given.
    """

    def __init__(self, readings: Sequence[Reading]) -> None:
        """Raises ValueError when the readings belong to more than one patient."""
        self.readings: list[Reading] = sort_readings(readings)
        self.times: list[datetime] = [r.measured_at for r in self.readings]
        patients = {r.patient_id for r in self.readings}
        if len(patients) > 1:
            raise ValueError("a prepared history holds one patient's readings")
        self.patient_id: str | None = patients.pop() if patients else None
        self._kinds: dict[frozenset[Kind], _View] = {}
        self._relevant: dict[RelevantKey, _View] = {}
        self._counts: dict[tuple[RelevantKey, str], list[int]] = {}
        self._tier_keys: dict[int, tuple[Tier, str]] = {}
        self._ids: dict[str, list[int]] | None = None

    def window(self, now: datetime, since: datetime | None) -> tuple[int, int]:
        """Positions ``[lo, hi)`` of the readings measured after ``since`` and by ``now``."""
        lo = 0 if since is None else bisect_right(self.times, since)
        return lo, bisect_right(self.times, now)

    def of_kinds(self, kinds: frozenset[Kind]) -> _View:
        """The readings of these kinds."""
        view = self._kinds.get(kinds)
        if view is None:
            index = [i for i, r in enumerate(self.readings) if kind_of(r) in kinds]
            view = _View(index, [self.times[i] for i in index])
            self._kinds[kinds] = view
        return view

    def relevant(self, rule: Rule) -> tuple[_View, RelevantKey]:
        """The readings a threshold rule could match (its kinds, flags, fields)."""
        fields = rule_fields(rule)
        key = (rule.kinds, rule.exclude_flags, fields)
        view = self._relevant.get(key)
        if view is None:
            index = [i for i, r in enumerate(self.readings) if is_relevant(rule, fields, r)]
            view = _View(index, [self.times[i] for i in index])
            self._relevant[key] = view
        return view, key

    def matches_before(self, key: RelevantKey, view: _View, tier: Tier) -> list[int]:
        """``counts[k]``: how many of the view's first ``k`` readings the tier matches."""
        tier_key = self._tier_key(tier)
        counts = self._counts.get((key, tier_key))
        if counts is None:
            counts = [0]
            for i in view.index:
                counts.append(counts[-1] + tier_matches(tier, self.readings[i]))
            self._counts[(key, tier_key)] = counts
        return counts

    def _tier_key(self, tier: Tier) -> str:
        # A tier's matches depend on its flag and conditions only; their repr is a value
        # key (two equal tiers built apart share one count; a dict in another order only
        # costs a recount).
        memo = self._tier_keys.get(id(tier))
        if memo is not None and memo[0] is tier:
            return memo[1]
        if len(self._tier_keys) >= _MAX_TIER_KEYS:
            self._tier_keys.clear()
        key = repr((tier.flag, tier.conditions))
        self._tier_keys[id(tier)] = (tier, key)
        return key

    def arrived(self, ids: Collection[str], lo: int, hi: int) -> list[int]:
        """Positions in ``[lo, hi)`` of the readings with these ids, oldest first."""
        if not ids:
            return []
        if self._ids is None:
            self._ids = {}
            for i, r in enumerate(self.readings):
                self._ids.setdefault(r.id, []).append(i)
        found = [p for reading_id in ids for p in self._ids.get(reading_id, ()) if lo <= p < hi]
        return sorted(found)

    def take(self, positions: Sequence[int]) -> list[Reading]:
        """The readings at these positions."""
        readings = self.readings
        return [readings[i] for i in positions]


@dataclass(frozen=True, slots=True)
class Span:
    """One evaluation's window in a prepared history."""

    history: PreparedHistory
    lo: int
    hi: int
    arrived: list[int]
    """Positions of the readings that arrived for this evaluation, within the window."""

    def kinds(self, kinds: frozenset[Kind], after: datetime | None = None) -> list[Reading]:
        """The window's readings of these kinds measured after ``after`` (inclusive)."""
        view = self.history.of_kinds(kinds)
        a, b = view.bounds(self.lo, self.hi)
        if after is not None:
            a = bisect_left(view.times, after, a, b)
        return self.history.take(view.index[a:b])

    def newest(self, kinds: frozenset[Kind]) -> int | None:
        """Position of the window's newest reading of these kinds."""
        view = self.history.of_kinds(kinds)
        a, b = view.bounds(self.lo, self.hi)
        return view.index[b - 1] if b > a else None

    def tail(self, kinds: frozenset[Kind], reach: timedelta) -> list[Reading]:
        """The window's newest reading of these kinds and those within ``reach`` before it."""
        view = self.history.of_kinds(kinds)
        a, b = view.bounds(self.lo, self.hi)
        if b == a:
            return []
        start = bisect_left(view.times, view.times[b - 1] - reach, a, b)
        return self.history.take(view.index[start:b])


SpanFn = Callable[[Rule, Span, Context], list[Reading]]


def _threshold(rule: Rule, span: Span, ctx: Context) -> list[Finding]:
    history = span.history
    view, key = history.relevant(rule)
    a, b = view.bounds(span.lo, span.hi)
    if b == a:
        return []
    within = max((t.confirmation.within for t in rule.tiers), default=timedelta(0))
    start = bisect_left(view.times, view.times[b - 1] - within, a, b)
    arrivals = []  # the arrivals among the rule's relevant readings: only they can be late
    for p in span.arrived:
        j = bisect_left(view.index, p, a, b)
        if j < b and view.index[j] == p:
            arrivals.append(p)
    relevant = history.take(view.index[start:b])
    since = ctx.now - EVENT_WINDOW
    from_event = bisect_right(view.times, since, a, b)

    def events(tier: Tier) -> int:
        counts = history.matches_before(key, view, tier)
        return counts[b] - counts[from_event]

    return threshold_findings(rule, relevant, ctx, events, history.take(arrivals))


def _window_mean(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    window: timedelta = rule.params["window"]
    readings = span.kinds(rule.kinds, ctx.now - window)
    return [r for r in readings if r.measured_at > ctx.now - window]


def _weight_change(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    over = max((c.over for c in rule.changes), default=timedelta(0))
    return span.tail(rule.kinds, over + rule.params["tolerance"])


def _moving_average_rise(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    reach = timedelta(days=2 * int(rule.params["days"])) + LOCAL_DAY_MARGIN
    return span.kinds(rule.kinds, ctx.now - reach)


def _forecast(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    return span.tail(rule.kinds, FORECAST_REACH)


def _cgm_summary(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    if ctx.summary is None:  # G7 reads nothing without a summary function
        return []
    return span.kinds(rule.kinds, ctx.now - timedelta(days=int(rule.params["days"])))


def _stale(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    newest = span.newest(rule.kinds)
    return [] if newest is None else span.history.take([newest])


def _missing(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    # The newest reading of each kind: without pairings known, monitoring of a kind starts
    # at its first reading, which the newest of the kind always follows, so the oldest
    # changes nothing (alerts.rules.stale.evaluate_missing).
    positions: set[int] = set()
    for kind in Kind:
        newest = span.newest(frozenset({kind}))
        if newest is not None:
            positions.add(newest)
    return span.history.take(sorted(positions))


def _nothing(rule: Rule, span: Span, ctx: Context) -> list[Reading]:
    return []


SPANS: Final[dict[str, SpanFn]] = {
    "window_mean": _window_mean,
    "weight_change": _weight_change,
    "moving_average_rise": _moving_average_rise,
    "forecast_ar2": _forecast,
    "cgm_summary": _cgm_summary,
    "stale": _stale,
    "missing": _missing,
    "gateway_offline": _nothing,
    "plausibility": _nothing,
    "clinic_outage": _nothing,
}
"""What each rule kind reads of the window (threshold rules have their own path); a kind
not listed here gets the whole window."""


def rule_findings(
    rule: Rule, span: Span, ctx: Context, evaluator: Callable[..., list[Finding]]
) -> list[Finding]:
    """One (effective) rule's findings over the span, each kind given what it reads."""
    if rule.kind == "threshold":
        return _threshold(rule, span, ctx)
    select = SPANS.get(rule.kind)
    readings = (
        span.history.readings[span.lo : span.hi] if select is None else select(rule, span, ctx)
    )
    result: list[Finding] = evaluator(rule, readings, ctx)
    return result
