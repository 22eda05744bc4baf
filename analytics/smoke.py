"""Smoke-check verdicts: what one success or failure path observed, judged against the rules (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from analytics.credits import ReconcileSettings, billed_minutes

PATHS = ("success", "failure")
# The vendor's models in its own order: the first of the cheapest wins a tie (light before human).
MODEL_ORDER = ("original", "light", "pro", "human")
# Error codes the API documents for a request it refuses; a failure-path input may be refused with this one.
REFUSED_INPUT_CODES = frozenset({"invalid_request"})
# The row `collectors smoke --format json` prints for each check (a public contract: keep names and order).
ROW_FIELDS = (
    "key_name", "path", "ok", "job_id", "request_id", "status", "error_code", "credits_charged",
    "credits_expected", "output_ok", "seconds",
)  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """Everything one path of one check saw, before it is judged."""

    key_name: str
    path: str  # success | failure
    started_at: datetime
    seconds: float
    model: str
    video_url: str
    job_id: str | None = None
    request_id: str | None = None
    status: str | None = None  # the job's last status seen
    api_error: str | None = None  # the API's error code, when it refused a call
    api_message: str | None = None
    timed_out: bool = False
    duration_seconds: float | None = None
    credits_charged: float | None = None
    billing_status: str | None = None
    output_url: str | None = None
    output_status: int | None = None  # the output URL's HTTP status (None: not fetched or no answer)
    output_error: str | None = None
    listed: bool | None = None  # the job showed up in the next collection (None: not looked)
    skipped: str | None = None  # why the path did not run at all (the daily credit cap)


@dataclass(frozen=True)
class Verdict:
    """The judged check: pass or fail, what was expected, and every problem in words."""

    observation: Observation
    ok: bool
    status: str
    error_code: str | None
    credits_expected: float | None
    output_ok: bool | None
    problems: tuple[str, ...] = field(default=())

    @property
    def detail(self) -> str:
        return "; ".join(self.problems) if self.problems else "passed"

    def row(self) -> dict[str, Any]:
        """The public JSON row (ROW_FIELDS, in order)."""
        obs = self.observation
        charged = None if obs.credits_charged is None else round(float(obs.credits_charged), 4)
        expected = None if self.credits_expected is None else round(float(self.credits_expected), 4)
        values = {
            "key_name": obs.key_name, "path": obs.path, "ok": self.ok, "job_id": obs.job_id,
            "request_id": obs.request_id, "status": self.status, "error_code": self.error_code,
            "credits_charged": charged, "credits_expected": expected, "output_ok": self.output_ok,
            "seconds": round(obs.seconds, 3),
        }  # fmt: skip
        return {name: values[name] for name in ROW_FIELDS}


def cheapest_model(rates: Mapping[str, float]) -> str:
    """The model with the lowest credits per minute; a tie goes to the vendor's order, then the name."""
    if not rates:
        raise ValueError("no model rates are known")
    rank = {name: i for i, name in enumerate(MODEL_ORDER)}
    return min(rates, key=lambda m: (float(rates[m]), rank.get(m, len(rank)), m))


def expected_credits(duration_seconds: float | None, rate: float | None, settings: ReconcileSettings) -> float | None:
    """Billed minutes (under the rounding policy) × the model's rate; None when either is unknown."""
    if duration_seconds is None or rate is None:
        return None
    minutes = float(billed_minutes(pd.Series([duration_seconds], dtype="float64"), settings.rounding).iloc[0])
    return round(minutes * float(rate), 6)


def _api_refusal(obs: Observation) -> str:
    message = f" ({obs.api_message})" if obs.api_message else ""
    if obs.api_error == "invalid_api_key":
        return f"the API refused the key: invalid_api_key{message}"
    return f"the API answered {obs.api_error}{message}"


def judge_success(obs: Observation, rate: float | None, settings: ReconcileSettings) -> Verdict:
    """Created → completed in time → output URL answers → charged billed minutes × rate → listed next collection."""
    if obs.skipped:
        return Verdict(obs, False, "skipped", "credit_cap", None, None, (obs.skipped,))
    if obs.api_error:
        return Verdict(obs, False, obs.status or "error", obs.api_error, None, None, (_api_refusal(obs),))
    problems: list[tuple[str, str]] = []  # (code, words)
    status = obs.status or "unknown"
    if obs.timed_out:
        problems.append(("timeout", f"the job was still {status} after {obs.seconds:.0f} s"))
    elif status != "completed":
        problems.append(("job_failed", f"the job ended {status}" + (f": {obs.api_message}" if obs.api_message else "")))
    output_ok: bool | None = None
    if status == "completed":
        if not obs.output_url:
            output_ok = False
            problems.append(("no_output", "the job completed without an output URL"))
        else:
            output_ok = obs.output_status is not None and 200 <= obs.output_status < 300 and not obs.output_error
            if not output_ok:
                answer = obs.output_error or f"HTTP {obs.output_status}"
                problems.append(("output_unreachable", f"the output URL did not answer ({answer})"))
    expected = expected_credits(obs.duration_seconds, rate, settings) if status == "completed" else None
    if status == "completed":
        if rate is None:
            problems.append(("unpriced_model", f"no rate is known for model {obs.model}"))
        elif expected is None:
            problems.append(("no_duration", "the job reports no duration, so its expected charge is unknown"))
        elif obs.credits_charged is None:
            problems.append(("no_charge", f"no charge reported; expected {expected:.2f} credits"))
        else:
            difference = float(obs.credits_charged) - expected
            if abs(difference) > settings.tolerance:
                minutes = float(billed_minutes(pd.Series([obs.duration_seconds]), settings.rounding).iloc[0])
                problems.append(
                    (
                        "credits_mismatch",
                        f"charged {obs.credits_charged:.2f} credits, expected {expected:.2f} "
                        f"({obs.duration_seconds:g} s = {minutes:.4g} min × {rate:g}/min, "
                        f"rounding {settings.rounding}): "
                        f"{abs(difference):.2f} {'too much' if difference > 0 else 'too little'} "
                        f"(tolerance {settings.tolerance:g})",
                    )
                )
    if obs.job_id and obs.listed is False:
        problems.append(("not_listed", "the job did not show up in the jobs collection that followed"))
    code = problems[0][0] if problems else None
    return Verdict(obs, not problems, status, code, expected, output_ok, tuple(words for _, words in problems))


def judge_failure(obs: Observation, settings: ReconcileSettings) -> Verdict:
    """An input that must fail → refused with the documented error, or the job ends `failed`; nothing charged."""
    if obs.skipped:
        return Verdict(obs, False, "skipped", "credit_cap", 0.0, None, (obs.skipped,))
    if obs.api_error:
        if obs.api_error in REFUSED_INPUT_CODES:
            return Verdict(obs, True, "refused", obs.api_error, 0.0, None)
        return Verdict(obs, False, obs.status or "error", obs.api_error, 0.0, None, (_api_refusal(obs),))
    problems: list[tuple[str, str]] = []
    status = obs.status or "unknown"
    if obs.timed_out:
        problems.append(("timeout", f"the job was still {status} after {obs.seconds:.0f} s"))
    elif status != "failed":
        problems.append(("not_failed", f"a job from an unreachable URL ended {status}"))
    if obs.credits_charged is not None and abs(float(obs.credits_charged)) > settings.tolerance:
        problems.append(("charged_for_failure", f"charged {obs.credits_charged:.2f} credits for a job that must fail"))
    if obs.job_id and obs.listed is False:
        problems.append(("not_listed", "the job did not show up in the jobs collection that followed"))
    code = problems[0][0] if problems else None
    return Verdict(obs, not problems, status, code, 0.0, None, tuple(words for _, words in problems))


def cost_estimate(last_cost: float | None, rate: float) -> float:
    """What the next success path may charge: what the same clip and model cost last time, else one minute."""
    return float(last_cost) if last_cost is not None else float(rate)


def within_cap(spent_today: float, estimate: float, cap: float) -> bool:
    return spent_today + estimate <= cap
