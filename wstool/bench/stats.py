"""What a bench run counts: latency histograms and counters (no I/O, no event loop).

Latencies are recorded in two steps, for speed. The hot path adds one to a plain
``dict`` keyed by the latency in whole microseconds (``counts[us] = counts.get(us,
0) + 1``, ~0.1 µs); every progress tick (and at the end) :meth:`Histogram.fold`
moves those counts into the run's histogram, one ``record_value(value, count)``
per distinct value. ``HdrHistogram.record_value`` is ~2.2 µs a call in Python
(measured on the bench machine): called per message it would cost the generator
more than parsing the echo does.

The run's histogram is an HDR histogram (PyPI ``hdrhistogram``, optional extra
``wstool[bench]``): 3 significant digits from 1 µs to one hour, bounded memory, and
an encoding that worker processes send to the parent to be merged exactly
(``--procs``). Without it the fallback is documented in README: the microsecond
counts themselves are the histogram (exact to the microsecond, one dict entry per
distinct latency, merged by adding counts), which is fine for a run whose latencies
spread over a few hundred thousand distinct microsecond values.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from hdrh.histogram import HdrHistogram
except ImportError:  # the fallback: exact microsecond counts
    HdrHistogram = None

HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3


def hdr_available() -> bool:
    return HdrHistogram is not None


def percentile_of_counts(counts: Mapping[int, int], percentile: float) -> int:
    """The smallest value with PERCENTILE % of the counts at or below it (0 if empty)."""
    total = sum(counts.values())
    if not total:
        return 0
    wanted = max(1, -(-total * percentile // 100))  # ceil, at least the first value
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= wanted:
            return value
    return max(counts)


class Histogram:
    """Latencies in microseconds: ``pending`` (the hot path's dict) + the run's total."""

    def __init__(self, *, use_hdr: bool = True) -> None:
        self.pending: dict[int, int] = {}
        self._hdr: Any = (HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS)
                          if use_hdr and HdrHistogram is not None else None)
        self._exact: dict[int, int] = {}
        self.count = 0
        self.total_us = 0
        self.min_us: int | None = None
        self.max_us = 0

    @property
    def kind(self) -> str:
        return "hdr" if self._hdr is not None else "exact-us"

    def record(self, value_us: int, count: int = 1) -> None:
        self.pending[value_us] = self.pending.get(value_us, 0) + count

    def fold(self) -> dict[int, int]:
        """Move the pending counts into the total; return them (one interval's).
        ``pending`` stays the same dict (the bench receivers hold it)."""
        pending = self.pending
        if not pending:
            return {}
        counts = dict(pending)
        pending.clear()
        self._add_counts(counts)
        return counts

    def _add_counts(self, counts: Mapping[int, int]) -> None:
        hdr = self._hdr
        for value, n in counts.items():
            value = max(1, min(value, HIGHEST_US))
            if hdr is not None:
                hdr.record_value(value, n)
            else:
                self._exact[value] = self._exact.get(value, 0) + n
            self.count += n
            self.total_us += value * n
            if self.min_us is None or value < self.min_us:
                self.min_us = value
            if value > self.max_us:
                self.max_us = value

    def percentile_us(self, percentile: float) -> int:
        self.fold()
        if not self.count:
            return 0
        if self._hdr is not None:
            # The HDR value is the bucket's highest equivalent value; never report
            # above the exact maximum seen.
            return min(int(self._hdr.get_value_at_percentile(percentile)), self.max_us)
        return percentile_of_counts(self._exact, percentile)

    def summary_s(self, percentiles: Iterable[float]) -> dict[str, float | int]:
        """count, min, the percentiles as ``pNN``, max and mean, in seconds."""
        self.fold()
        out: dict[str, float | int] = {"count": self.count}
        if not self.count:
            return out
        out["min"] = (self.min_us or 0) / 1e6
        for p in percentiles:
            out[f"p{p:g}"] = self.percentile_us(p) / 1e6
        out["max"] = self.max_us / 1e6
        out["mean"] = self.total_us / self.count / 1e6
        return out

    def buckets(self, edges_us: Sequence[int]) -> list[int]:
        """Counts per bucket: values < edges[0], then [edges[i], edges[i+1]), the last
        open-ended (for the terminal's latency histogram)."""
        self.fold()
        counts = [0] * (len(edges_us) + 1)
        items: Iterable[tuple[int, int]]
        if self._hdr is not None:
            items = ((int(it.value_iterated_to), int(it.count_added_in_this_iter_step))
                     for it in self._hdr.get_recorded_iterator())
        else:
            items = self._exact.items()
        for value, n in items:
            counts[bisect.bisect_right(edges_us, value)] += n
        return counts

    # Merging (--procs): a worker sends encode(), the parent merge()s it, exactly.

    def encode(self) -> str:
        self.fold()
        head = {"count": self.count, "total_us": self.total_us, "min_us": self.min_us,
                "max_us": self.max_us}
        if self._hdr is not None:
            body = self._hdr.encode().decode() if self.count else ""
            return json.dumps({**head, "hdr": body})
        return json.dumps({**head, "exact": list(self._exact.items())})

    def merge(self, encoded: str) -> None:
        self.fold()
        data = json.loads(encoded)
        if not data["count"]:
            return
        if "hdr" in data and self._hdr is not None:
            self._hdr.add(HdrHistogram.decode(data["hdr"].encode()))
        elif "exact" in data and self._hdr is None:
            for value, n in data["exact"]:
                self._exact[value] = self._exact.get(value, 0) + n
        else:  # pragma: no cover - parent and workers run the same interpreter
            raise ValueError("histograms of different kinds")
        self.count += data["count"]
        self.total_us += data["total_us"]
        if data["min_us"] is not None and (self.min_us is None or data["min_us"] < self.min_us):
            self.min_us = data["min_us"]
        self.max_us = max(self.max_us, data["max_us"])

    def hdr_base64(self) -> str | None:
        """The HDR histogram in its standard compressed form (HdrHistogram tools read it)."""
        self.fold()
        if self._hdr is None or not self.count:
            return None
        return str(self._hdr.encode().decode())
