"""Paired runs: ours against a baseline, in alternating order, summarised by medians and a range.

On a shared machine one run of either way varies by a quarter (benchmarks/RESULTS.md), and its
speed drifts within minutes, so each pair runs the two ways back to back (baseline first in
even pairs, ours first in odd ones) and the figure is the median pair's ratio, with the
range of all the pairs' ratios beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True)
class Paired:
    """Seconds of each pair's two runs (``ours[i]`` next to ``baseline[i]``)."""

    ours: tuple[float, ...]
    baseline: tuple[float, ...]

    @property
    def ratios(self) -> list[float]:
        """Each pair's baseline / ours (above 1: ours is faster), sorted."""
        return sorted(b / o for o, b in zip(self.ours, self.baseline))

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    @property
    def ours_median(self) -> float:
        return median(self.ours)

    @property
    def baseline_median(self) -> float:
        return median(self.baseline)

    def scaled(self, factor: float) -> Paired:
        """The same pairs with every time multiplied by ``factor`` (per snapshot, per image)."""
        return Paired(tuple(t * factor for t in self.ours), tuple(t * factor for t in self.baseline))

    def summary(self) -> str:
        """'median pair's ratio, the pairs' range, each way's range' for a row's note."""
        r = self.ratios
        return (
            f"medians of {len(r)} pairs in alternating order; ratio: the median pair's, pairs {r[0]:.2f}-{r[-1]:.2f}; "
            f"ours {min(self.ours):.3g}-{max(self.ours):.3g} s, baseline {min(self.baseline):.3g}-"
            f"{max(self.baseline):.3g} s"
        )

    def as_dict(self) -> dict:
        return dict(ours=list(self.ours), baseline=list(self.baseline))


def paired(ours: Callable[[], float], baseline: Callable[[], float], pairs: int) -> Paired:
    """Run ``pairs`` pairs of the two timed callables (each returns its seconds), alternating
    which goes first."""
    if pairs < 1:
        raise ValueError(f"pairs must be at least 1, got {pairs}")
    ours_s, baseline_s = [], []
    for i in range(pairs):
        if i % 2 == 0:
            baseline_s.append(baseline())
            ours_s.append(ours())
        else:
            ours_s.append(ours())
            baseline_s.append(baseline())
    return Paired(tuple(ours_s), tuple(baseline_s))
