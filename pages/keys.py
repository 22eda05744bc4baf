"""Keys: the inventory with activity, staleness and governance findings, and the deletion candidates."""

from urllib.parse import quote

import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from analytics.keys import FINDINGS, STALE_FINDINGS, deletion_candidates
from formatting import for_export
from ui.data import provenance_caption
from ui.format import local_time, plain, relative_age
from ui.key_actions import action_panel, audit_section, rotations_section
from ui.key_findings import badge, codes_help, keys_with_findings, words
from ui.page import open_page
from ui.tables import SHOWN_ROWS_HINT, capped, link_column, table

settings, filters, now = open_page("Keys")
tz = filters.tz

view, rules_problem = keys_with_findings(settings, now)
if rules_problem:
    st.warning(plain(rules_problem, None), icon=":material/rule:")
provenance_caption("findings", view.findings.provenance)
findings = view.findings.frame
inventory = view.inventory
keys = inventory.merge(view.activity, on="key_name", how="left")
keys = keys[keys["environment"].isin(filters.environments)]

per_key = findings.groupby("key_name").agg(findings=("finding", list), reasons=("detail", " · ".join))
keys = keys.merge(per_key, left_on="key_name", right_index=True, how="left")
keys["findings"] = keys["findings"].map(lambda f: f if isinstance(f, list) else [])
keys["reasons"] = keys["reasons"].fillna("")
rotation_base = pd.to_datetime(keys["rotated_at"]).fillna(pd.to_datetime(keys["created_at"]))
keys["rotation_age_days"] = (pd.Timestamp(now) - rotation_base).dt.days

owners = sorted(keys["owner"].dropna().unique().tolist())
search, left, right = st.columns(3)
name_part = search.text_input("Key name contains", key="keys_search", help="Case-insensitive; empty means every key.")
owner_choice = left.multiselect("Owner", [*owners, "— no owner —"], key="keys_owner", help="Empty means every owner.")
finding_choice = right.multiselect(
    "Finding",
    list(FINDINGS),
    key="keys_finding",
    format_func=words,
    help="Keys with any of the chosen findings; empty means every key.",
)
shown = keys
if name_part.strip():
    shown = shown[shown["key_name"].str.contains(name_part.strip(), case=False, regex=False)]
if owner_choice:
    wanted = shown["owner"].isin(owner_choice) | (shown["owner"].isna() & ("— no owner —" in owner_choice))
    shown = shown[wanted]
if finding_choice:
    shown = shown[shown["findings"].map(lambda f: bool(set(f) & set(finding_choice)))]

in_scope = findings[findings["key_name"].isin(shown["key_name"]) | ~findings["key_name"].isin(inventory["key_name"])]
if finding_choice:
    in_scope = in_scope[in_scope["finding"].isin(finding_choice)]
stale = in_scope[in_scope["finding"].isin(STALE_FINDINGS)]
cols = st.columns(4)
cols[0].metric("Keys shown", f"{len(shown):,}", help="Configured keys matching the filters.")
cols[1].metric("Keys with findings", f"{int((shown['findings'].map(len) > 0).sum()):,}")
cols[2].metric("Findings", f"{len(in_scope):,}")
cols[3].metric("Deletion candidates", f"{stale['key_name'].nunique():,}", help="Never used or inactive keys.")
counts = in_scope["finding"].value_counts()
if not counts.empty:
    with st.container(horizontal=True, gap="small"):
        for finding in (f for f in FINDINGS if f in counts):
            badge(finding, f" · {int(counts[finding])}")

# Keys that need something first (most findings first), then the rest by name.
shown = shown.assign(_n=shown["findings"].map(len)).sort_values(["_n", "key_name"], ascending=[False, True])
tab_keys, tab_findings, tab_delete, tab_actions = st.tabs(["All keys", "Findings", "Deletion candidates", "Actions"])

with tab_keys:
    listed = capped(shown, "keys (most findings first)", f"{SHOWN_ROWS_HINT} by name, owner or finding")
    rows = pd.DataFrame(
        {
            "key": "key_detail?key=" + listed["key_name"].map(lambda n: quote(n, safe="")),
            "findings": listed["findings"].map(lambda f: [words(x) for x in f]),
            "why": listed["reasons"],
            "last_used": [relative_age(t, now) for t in listed["last_used_at"]],
            "calls_30d": listed["calls_30d"].fillna(0).astype("int64"),
            "daily_calls": listed["daily_calls"].map(lambda v: [int(x) for x in v] if hasattr(v, "__len__") else []),
            "environment": listed["environment"],
            "owner": listed["owner"].fillna("— none —"),
            "calls_7d": listed["calls_7d"].fillna(0).astype("int64"),
            "rotation_age_days": listed["rotation_age_days"],
            "masked_key": listed["masked_key"],
            "last_used_at": listed["last_used_at"].map(lambda t: local_time(t, tz)),
            "created_at": listed["created_at"].map(lambda t: local_time(t, tz)),
        }
    )
    table(
        rows,
        {
            "key": link_column("key"),
            "findings": st.column_config.ListColumn("Findings", help=codes_help(list(FINDINGS)), width="medium"),
            "why": st.column_config.TextColumn("Why", width="large"),
            "last_used": st.column_config.TextColumn("Last used", help="How long ago; the exact time is to the right."),
            "daily_calls": st.column_config.LineChartColumn("Calls, last 30 days", y_min=0),
            "rotation_age_days": st.column_config.NumberColumn("Secret age (days)", format="%,d"),
        },
        rows=18,
        main=True,
    )
    st.caption(
        "Last used: the newest call seen in events, the vendor's inventory, jobs or the daily summary. "
        "Secret age counts from the last rotation, or from creation for keys never rotated."
    )
    export = pd.DataFrame(
        {
            "key_name": shown["key_name"],
            "environment": shown["environment"],
            "owner": shown["owner"],
            "findings": shown["findings"].map(", ".join),
            "why": shown["reasons"],
            "masked_key": shown["masked_key"],
            "created_at": shown["created_at"],
            "rotation_age_days": shown["rotation_age_days"],
            "last_used_at": shown["last_used_at"],
            "calls_7d": shown["calls_7d"].fillna(0).astype("int64"),
            "calls_30d": shown["calls_30d"].fillna(0).astype("int64"),
        }
    )
    st.download_button(
        "Download keys (CSV)",
        lambda: csv_frame(for_export(export, tz, times=("created_at", "last_used_at"))),  # written when clicked
        file_name=f"keys_{now:%Y%m%d}.csv",
        mime="text/csv",
        key="download_keys",
    )

with tab_findings:
    if in_scope.empty:
        st.success("No findings for the keys shown.")
    else:
        for finding in [f for f in FINDINGS if f in counts]:
            listed = in_scope[in_scope["finding"] == finding]
            with st.expander(f"{words(finding)} ({len(listed)})", expanded=finding in counts.index[:1]):
                badge(finding)
                some = capped(listed, "keys with this finding", f"{SHOWN_ROWS_HINT} by name or owner")
                lines = [f"- **{plain(r.key_name, None)}**: {plain(r.detail, None)}" for r in some.itertuples()]
                st.markdown("\n".join(lines))
        st.download_button(
            "Download findings (CSV)",
            lambda: csv_frame(for_export(in_scope, tz, times=("since",))),
            file_name=f"key_findings_{now:%Y%m%d}.csv",
            mime="text/csv",
            key="download_findings",
        )

with tab_delete:
    candidates = deletion_candidates(shown, in_scope)  # the other findings listed beside each are in scope too
    if candidates.empty:
        st.success("No stale keys: every key shown was used recently.")
    else:
        st.caption(
            "Keys never used or idle past their environment's threshold, with the evidence for deleting "
            "them. Confirm with the owner, then delete upstream and from the config."
        )
        some = capped(candidates, "deletion candidates", f"{SHOWN_ROWS_HINT} by name or owner")
        evidence = pd.DataFrame(
            {
                "key_name": some["key_name"],
                "finding": some["finding"].map(words),
                "evidence": some["detail"],
                "last_used_at": some["last_used_at"].map(lambda t: local_time(t, tz)),
                "calls_30d": some["calls_30d"].fillna(0).astype("int64"),
                "environment": some["environment"],
                "owner": some["owner"].fillna("— none —"),
                "created_at": some["created_at"].map(lambda t: local_time(t, tz)),
                "other_findings": some["other_findings"].map(
                    lambda codes: ", ".join(words(c) for c in codes.split(", ") if c)
                ),
            }
        )
        table(evidence, {"evidence": st.column_config.TextColumn("Evidence", width="large")})
        columns = ["key_name", "environment", "owner", "finding", "detail", "created_at", "last_used_at", "calls_30d",
                   "other_findings"]  # fmt: skip
        st.download_button(
            "Download deletion candidates (CSV)",
            lambda: csv_frame(for_export(candidates[columns], tz, times=("created_at", "last_used_at"))),
            file_name=f"deletion_candidates_{now:%Y%m%d}.csv",
            mime="text/csv",
            key="download_candidates",
        )

with tab_actions:
    st.caption(
        "Disable, enable or rotate a key through the vendor's admin API. Each check shows the key's last 7 days of "
        "traffic; a key with calls in the last 24 h is not disabled unless forced with a reason; every action and "
        "refusal is appended to the audit (the `key_actions` view)."
    )
    action_panel(settings, now, prefix="keys_action")
    rotations_section(settings, now, filters.tz, prefix="keys_action")
    audit_section(settings, filters.tz)
