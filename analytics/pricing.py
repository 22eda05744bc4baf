"""Which credits-per-minute rates reconciliation uses (the API's, a config's or the published ones), and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

# In order of preference unless `[pricing] prefer = "config"` puts the config's rates first.
SOURCES = ("api", "config", "published")
SOURCE_WORDS = {"api": "from the API", "config": "from config [pricing]", "published": "the vendor's published rates"}
PREFER = ("api", "config")


@dataclass(frozen=True)
class PricingConfig:
    """`[pricing]`: rates for models the API's pricing does not give (or for all, with prefer = "config")."""

    rates: tuple[tuple[str, float], ...] = ()  # (model, credits per minute): a tuple keeps settings hashable
    prefer: str = "api"


@dataclass(frozen=True)
class Pricing:
    """The rates one reconciliation uses, where each came from, and a sentence saying so."""

    rates: dict[str, float]
    sources: dict[str, str]  # model -> api | config | published
    source: str  # the sources used, joined: "api", "published", "api+published", …
    label: str  # e.g. "from the API (read 2026-11-20 12:00 UTC)"
    warning: str | None = None  # why the API's rates were not (all) used, when that is news

    def source_of(self, model: object) -> str:
        return self.sources.get(str(model).lower(), self.source) if isinstance(model, str) else self.source

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "label": self.label, "warning": self.warning, "rates": dict(self.rates)}


def api_only(rates: Mapping[str, float]) -> Pricing:
    """Rates known to come from the API (tests and callers that do not resolve fallbacks)."""
    clean = {str(m).lower(): float(r) for m, r in rates.items()}
    return Pricing(clean, dict.fromkeys(clean, "api"), "api", SOURCE_WORDS["api"])


def _when(moment: datetime | None) -> str:
    return "—" if moment is None or pd.isna(moment) else f"{pd.Timestamp(moment):%Y-%m-%d %H:%M} UTC"


class CollectedPricing(Protocol):
    """What the store knows of the API's pricing (store.credit_reads.PricingState)."""

    rates: pd.DataFrame  # model, credits_per_minute
    read_at: datetime | None  # the last successful read
    unreadable_since: datetime | None
    unreadable_reason: str | None


class PublishedRates(Protocol):
    """The vendor's published rates and where they were read (collectors.contract.PUBLISHED_PRICING)."""

    rates: dict[str, float]
    source: str
    as_of: str


def resolve_pricing(collected: CollectedPricing, configured: PricingConfig, published: PublishedRates) -> Pricing:
    """Each model's rate from the first source that has it: the API's, then `[pricing]`, then the published
    rates (config first with prefer = "config"). Never empty, never silent: the label names every source
    used, and the warning says when the API's pricing could not be read."""
    frame, read_at = collected.rates, collected.read_at
    api = {str(m).lower(): float(r) for m, r in zip(frame["model"], frame["credits_per_minute"], strict=True)}
    layers = [("api", api), ("config", dict(configured.rates)), ("published", dict(published.rates))]
    if configured.prefer == "config":
        layers.insert(0, layers.pop(1))
    rates: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, table in layers:
        for model, rate in table.items():
            if model not in rates:
                rates[model], sources[model] = rate, name
    used = [s for s in SOURCES if s in sources.values()]
    source = "+".join(used)
    parts = []
    for name in used:
        models = sorted(m for m, s in sources.items() if s == name)
        words = SOURCE_WORDS[name]
        if name == "api":
            words += f" (read {_when(read_at)})" if read_at is not None else ""
        elif name == "published":
            words += f" ({published.source}, as of {published.as_of})"
        parts.append(words if len(used) == 1 else f"{', '.join(models)} {words}")
    label = "; ".join(parts)
    warning = None
    if collected.unreadable_since is not None:
        why = f" ({collected.unreadable_reason})" if collected.unreadable_reason else ""
        kept = f"the last rates read at {_when(read_at)} are used" if api else "fallback rates are used"
        warning = f"the API's pricing has been unreadable since {_when(collected.unreadable_since)}{why}; {kept}"
    elif not api:
        warning = "no pricing has been collected from the API yet; fallback rates are used"
    return Pricing(rates, sources, source, label, warning)
