"""How often the budget forecast's 90 % band holds the month's real end, and how far its point is off.

Synthetic daily spend (a weekday/weekend rhythm, growth between -0.4 % and +0.6 % a day, lognormal noise), 70 days
of history, forecast on the 12th at noon (today's row half a day old), against the month's real total.
`python scripts/bench_forecast.py [--months 300] [--noise 0.15] [--seeds 3 5 11 17]`
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analytics.budgets import forecast_month  # noqa: E402

WEEKLY = np.array([1.15, 1.1, 1.1, 1.05, 1.0, 0.4, 0.4])


def trial(rng: np.random.Generator, month: int, noise: float) -> tuple[bool, float]:
    start = date(2026, month, 1)
    days = [start - timedelta(days=70) + timedelta(days=i) for i in range(101)]
    level, growth = rng.uniform(200, 5000), rng.uniform(-0.004, 0.006)
    values = np.array(
        [level * (1 + growth) ** i * WEEKLY[d.weekday()] * rng.lognormal(0, noise) for i, d in enumerate(days)]
    )
    truth = values[[d.month == month for d in days]].sum()
    now = datetime(2026, month, 12, 12)
    today = days.index(now.date())
    seen = values[: today + 1].copy()
    seen[today] *= 0.5
    forecast = forecast_month(pd.Series(seen, index=days[: today + 1]), now)
    return forecast.low <= truth <= forecast.high, (forecast.total - truth) / truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 11, 17])
    args = parser.parse_args()
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        results = [trial(rng, 1 + i % 12, args.noise) for i in range(args.months)]
        inside = np.mean([r[0] for r in results])
        errors = np.array([r[1] for r in results])
        print(
            f"seed {seed}: band held {inside:.1%} of {args.months} months; point error median "
            f"{np.median(np.abs(errors)):.1%}, bias {errors.mean():+.1%}"
        )


if __name__ == "__main__":
    main()
