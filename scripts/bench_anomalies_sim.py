"""Score per-key incident detection against the stand-in's labelled incidents, and time it at scale.

Method: for each seed, the stand-in's world is read directly (no HTTP) into the TRUE hourly series
the store would hold after a complete collection — calls per hour from events, and jobs, failed
jobs and credits per hour by job creation — for every key over the whole 90 days.  `detect()` runs
on that long frame exactly as the Anomalies page and CLI run it.  A labelled incident
{key, metric, direction, start, end} is found when an incident of the same key, metric and
direction overlaps [start, end + TOLERANCE hours); its delay is the hours from the labelled
start to the first flagged hour (0 when flagged in the first hour).  A detected incident is a
true positive when it overlaps a labelled one of its key and metric in that window; otherwise it
is false, and "caused" when it overlaps a labelled incident of another metric on the same key
(a failed-jobs storm triggers retries that raise credits; a calls drop silences credits too).
False incidents are further split into "learning" (starting in the first LEARNING_DAYS of the key's
series, before the detector has seen one weekly cycle: the world starts on a Saturday, so the first
Monday looks like a 3x spike; the stand-in never labels an incident in a key's first 14 days either)
and "disabled" (a drop once the key was disabled upstream: its silence is real, and the Keys page says why).

The stand-in labels only incidents worth paging for: a generated calls spike adds at least
`simulator.catalog.MIN_SPIKE_EXTRA_CALLS` calls an hour (issue #5: "0 to 3 calls is not an alarm").

Run: .venv/bin/python scripts/bench_anomalies_sim.py [--seeds 7,11,3,5,13] [--keys 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.anomalies import DEFAULT_THRESHOLD  # noqa: E402
from analytics.detection import METRICS, detect  # noqa: E402
from simulator.world import DAY_MS, HOUR_MS, World, to_ms  # noqa: E402

TOLERANCE_H = 3
LEARNING_DAYS = 7
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def true_hourly(world: World) -> pd.DataFrame:
    """Long frame [key_name, hour, metric, value] computed from the world's own arrays."""
    now_ms = to_ms(world.now())
    end_hour = now_ms // HOUR_MS  # hours strictly before the current one are complete
    frames = []
    for spec in world.keys():
        days = world._days_with_traffic(spec, now_ms)  # noqa: SLF001 - ground truth, not the API
        hours_ev: list[np.ndarray] = []
        hours_job: list[np.ndarray] = []
        failed: list[np.ndarray] = []
        charged: list[np.ndarray] = []
        for day in days:
            data = world.day_data(spec, day)
            hours_ev.append(data.ev_t[data.ev_t < now_ms] // HOUR_MS)
            created = data.j_t < now_ms
            hours_job.append(data.j_t[created] // HOUR_MS)
            codes = data.status_codes(now_ms)
            failed.append((codes == 3)[created])
            charged.append(np.asarray(data.j_charged, dtype=float)[created])
        if not days:
            continue
        first_hour = max(to_ms(spec.active_from) // HOUR_MS, min(days) * DAY_MS // HOUR_MS)
        grid = np.arange(first_hour, end_hour)
        if grid.size == 0:
            continue
        ev = np.concatenate(hours_ev) if hours_ev else np.array([], dtype=np.int64)
        calls = np.bincount(ev - first_hour, minlength=grid.size)[: grid.size] if ev.size else np.zeros(grid.size)
        frame = pd.DataFrame({"hour": pd.to_datetime(grid * HOUR_MS, unit="ms"), "calls": calls.astype(float)})
        jh = np.concatenate(hours_job) if hours_job else np.array([], dtype=np.int64)
        if jh.size:
            jobs = pd.DataFrame(
                {"hour": jh, "jobs": 1.0, "failed_jobs": np.concatenate(failed).astype(float),
                 "credits": np.concatenate(charged)}
            ).groupby("hour").sum()  # fmt: skip
            jobs.index = pd.to_datetime(jobs.index * HOUR_MS, unit="ms")
            frame = frame.merge(jobs, left_on="hour", right_index=True, how="left")
        long = frame.melt(id_vars="hour", var_name="metric", value_name="value")
        long = long[(long["metric"] == "calls") | long["value"].notna()]
        long.insert(0, "key_name", spec.name)
        frames.append(long)
    return pd.concat(frames, ignore_index=True)[["key_name", "hour", "metric", "value"]]


def _last_hour(world: World) -> pd.Timestamp:
    return pd.Timestamp(world.now()).tz_localize(None).floor("h")


def _overlap(found: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    # incident end is the last flagged hour or day (inclusive); label end is exclusive
    last = found["end"] + pd.to_timedelta((found["grain"] == "day") * 23, unit="h")
    return found[(found["start"] < end + pd.Timedelta(hours=TOLERANCE_H)) & (last >= start)]


def evaluate(world: World, found: pd.DataFrame, first_hour: pd.Series) -> dict[str, dict[str, float]]:
    specs = {spec.name: spec for spec in world.keys()}
    labels = pd.DataFrame(world.incidents())
    labels["start"] = pd.to_datetime(labels["start"]).dt.tz_localize(None)
    labels["end"] = pd.to_datetime(labels["end"]).dt.tz_localize(None)
    found = found.assign(start=pd.to_datetime(found["start"]), end=pd.to_datetime(found["end"]))
    out: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        mine = labels[labels["metric"] == metric]
        det = found[found["metric"] == metric]
        hit_rows: set[int] = set()
        delays = []
        found_n = 0
        for lab in mine.itertuples():
            same = det[(det["key_name"] == lab.key_name) & (det["direction"] == lab.direction)]
            match = _overlap(same, lab.start, lab.end)
            hit_rows |= set(_overlap(det[det["key_name"] == lab.key_name], lab.start, lab.end).index)
            if not match.empty:
                found_n += 1
                first = match["start"].min()
                delays.append(max(0.0, (first - lab.start) / pd.Timedelta(hours=1)))
        false = det.drop(index=list(hit_rows))
        caused = learning = disabled = 0
        for row in false.itertuples():
            others = labels[(labels["key_name"] == row.key_name) & (labels["metric"] != metric)]
            until = specs[row.key_name].active_until
            if any(
                row.start < o.end + pd.Timedelta(hours=TOLERANCE_H) and row.end >= o.start for o in others.itertuples()
            ):
                caused += 1
            elif row.start < first_hour[row.key_name] + pd.Timedelta(days=LEARNING_DAYS):
                learning += 1
            elif row.direction == "drop" and until is not None and row.start >= pd.Timestamp(until).tz_localize(None):
                disabled += 1
        out[metric] = {
            "labelled": len(mine),
            "found": found_n,
            "detected": len(det),
            "false": len(false),
            "caused": caused,
            "learning": learning,
            "disabled": disabled,
            "delay_sum": float(sum(delays)),
            "delay_n": len(delays),
            "delay_max": float(max(delays)) if delays else 0.0,
        }
    return out


def runtime(keys: int, days: int, seed: int = 0) -> tuple[float, float]:
    """Seconds for `detect()` on keys x days hourly (calls, jobs, failed jobs, credits), wall and CPU."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-08-22", periods=days * 24, freq="h")
    hod = hours.hour.to_numpy()
    shape = 0.12 + 0.88 * np.exp(-0.5 * ((hod - 13.5) / 3.5) ** 2)
    rates = rng.lognormal(3, 1.2, size=keys)
    calls = rng.poisson(np.outer(shape, rates))
    jobs = rng.binomial(calls, 0.08)
    failed = rng.binomial(jobs, 0.03)
    credits = jobs * rng.gamma(2.0, 30.0, size=jobs.shape)
    names = [f"svc{i:04d}-prod" for i in range(keys)]
    parts = []
    for metric, values in (("calls", calls), ("jobs", jobs), ("failed_jobs", failed), ("credits", credits)):
        frame = pd.DataFrame(values.astype(float), index=hours, columns=names).stack().rename("value").reset_index()
        frame.columns = ["hour", "key_name", "value"]
        if metric != "calls":
            frame = frame[values.reshape(-1) > 0]
        frame["metric"] = metric
        parts.append(frame)
    long = pd.concat(parts, ignore_index=True)[["key_name", "hour", "metric", "value"]]
    now = hours[-1].to_pydatetime() + pd.Timedelta(hours=2)
    wall, cpu = time.perf_counter(), time.process_time()
    detect(long, now)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7,11,3,5,13")
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--scale-keys", type=int, default=1000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument(
        "--coverage-days", type=int, help="calls hourly only for the last N days (daily before), as collected"
    )
    parser.add_argument("--all", action="store_true", help="judge every incident, not only the alert-worthy ones")
    args = parser.parse_args()

    totals: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    key_days = 0.0
    for seed in (int(s) for s in args.seeds.split(",")):
        world = World(seed=seed, n_keys=args.keys, days=90, now=NOW)
        hourly = true_hourly(world)
        now = world.now().replace(tzinfo=None)
        daily = None
        if args.coverage_days is not None:
            # As the collected store holds it: hourly calls only from event polling on, daily before.
            hourly_from = pd.Timestamp(now).floor("h") - pd.Timedelta(days=args.coverage_days)
            calls = hourly[hourly["metric"] == "calls"]
            daily = (
                calls.assign(day=calls["hour"].dt.floor("D"))
                .groupby(["key_name", "day"], as_index=False)["value"]
                .sum()
            )
            daily["hourly_from"] = hourly_from
            hourly = hourly[(hourly["metric"] != "calls") | (hourly["hour"] >= hourly_from)]
        found = detect(hourly, now, threshold=args.threshold, daily=daily)
        if not args.all:
            found = found[found["alert_worthy"]]
        first_hour = pd.to_datetime(hourly.groupby("key_name")["hour"].min())
        key_days += float(((_last_hour(world) - first_hour) / pd.Timedelta(days=1)).sum())
        result = evaluate(world, found, first_hour)
        line = "  ".join(f"{m} {r['found']}/{r['labelled']} found, {r['false']} false" for m, r in result.items())
        print(f"seed {seed}: {line}", flush=True)
        for metric, r in result.items():
            for name, value in r.items():
                totals[metric][name] = totals[metric].get(name, 0) + value

    print(
        f"\nthreshold {args.threshold}, {args.keys} keys x 90 days per seed, seeds {args.seeds}; "
        f"{key_days:,.0f} key-days scored"
    )
    print(
        "| metric | labelled | recall | precision | F1 | false incidents | of which: another metric's incident "
        f"/ key's first {LEARNING_DAYS} days / after the key was disabled | unexplained, per 1,000 key-days "
        "| mean / max delay (h) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for metric, t in totals.items():
        recall = t["found"] / t["labelled"] if t["labelled"] else float("nan")
        precision = (t["detected"] - t["false"]) / t["detected"] if t["detected"] else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        delay = t["delay_sum"] / t["delay_n"] if t["delay_n"] else float("nan")
        unexplained = t["false"] - t["caused"] - t["learning"] - t["disabled"]
        print(
            f"| {metric} | {int(t['labelled'])} | {recall:.2f} | {precision:.2f} | {f1:.2f} | {int(t['false'])} "
            f"| {int(t['caused'])} / {int(t['learning'])} / {int(t['disabled'])} "
            f"| {int(unexplained)} ({1000 * unexplained / key_days:.1f}) | {delay:.1f} / {t['delay_max']:.0f} |"
        )
    if not args.skip_scale:
        wall, cpu = runtime(args.scale_keys, 90)
        print(f"\ndetect() on {args.scale_keys} keys x 90 days hourly, 3 metrics: {wall:.2f} s wall, {cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
