"""Keys: the inventory with activity, staleness and governance findings, and the deletion candidates."""

from urllib.parse import quote

import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from analytics.keys import FINDINGS, STALE_FINDINGS, deletion_candidates
from ui.data import provenance_caption
from ui.format import local_time, plain, relative_age
from ui.key_actions import action_panel, audit_section, rotations_section
from ui.key_findings import keys_with_findings
from ui.page import open_page

BADGE_COLOR = {
    "disabled_upstream": "red", "unmanaged_key": "red", "sandbox_in_prod": "red", "rotation_overdue": "red",
    "never_used": "orange", "inactive": "orange", "rotation_due": "orange", "owner_offboarded": "orange",
    "missing_owner": "orange", "env_mismatch": "violet", "staging_shape_drift": "violet",
    "generic_name": "gray", "bad_name": "gray",
}  # fmt: skip


def badge(finding: str) -> str:
    return f":{BADGE_COLOR.get(finding, 'blue')}-badge[{finding}]"


settings, filters, now = open_page("Keys")

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
left, right = st.columns(2)
owner_choice = left.multiselect("Owner", [*owners, "— no owner —"], key="keys_owner", help="Empty means every owner.")
finding_choice = right.multiselect(
    "Finding",
    list(FINDINGS),
    key="keys_finding",
    format_func=lambda f: f"{f} ({FINDINGS[f]})",
    help="Keys with any of the chosen findings; empty means every key.",
)
shown = keys
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
    st.markdown(" ".join(f"{badge(f)} **{int(counts[f])}**" for f in FINDINGS if f in counts))

tab_keys, tab_findings, tab_delete, tab_actions = st.tabs(["All keys", "Findings", "Deletion candidates", "Actions"])

with tab_keys:
    table = pd.DataFrame(
        {
            "key": "key_detail?key=" + shown["key_name"].map(lambda n: quote(n, safe="")),
            "environment": shown["environment"],
            "owner": shown["owner"].fillna("— none —"),
            "findings": shown["findings"],
            "masked key": shown["masked_key"],
            "created": shown["created_at"].map(lambda t: local_time(t, filters.tz)),
            "rotation age (days)": shown["rotation_age_days"],
            "last used": [relative_age(t, now) for t in shown["last_used_at"]],
            "last used at": shown["last_used_at"].map(lambda t: local_time(t, filters.tz)),
            "calls 7d": shown["calls_7d"].fillna(0).astype("int64"),
            "calls 30d": shown["calls_30d"].fillna(0).astype("int64"),
            "last 30 days": shown["daily_calls"].map(lambda v: [int(x) for x in v] if hasattr(v, "__len__") else []),
            "why": shown["reasons"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 640),
        column_config={
            "key": st.column_config.LinkColumn("key", display_text=r"key=(.*)$", help="Open the key's detail page"),
            "calls 7d": st.column_config.NumberColumn(format="localized"),
            "calls 30d": st.column_config.NumberColumn(format="localized"),
            "last 30 days": st.column_config.LineChartColumn("calls, last 30 days", y_min=0),
            "findings": st.column_config.ListColumn("findings"),
            "why": st.column_config.TextColumn("why", width="large"),
        },
    )
    st.caption(
        "Last used: the newest call seen in events, the vendor's inventory, jobs or the daily summary. "
        "Rotation age counts from the last rotation, or from creation for keys never rotated."
    )
    export = table.drop(columns=["last 30 days", "key"]).assign(
        key=shown["key_name"].to_numpy(), findings=table["findings"].map(", ".join)
    )
    st.download_button(
        "Download keys (CSV)",
        csv_frame(export[["key", *export.columns[:-1]]]),
        file_name=f"keys_{now:%Y%m%d}.csv",
        mime="text/csv",
        key="download_keys",
    )

with tab_findings:
    if in_scope.empty:
        st.success("No findings for the keys shown.")
    else:
        for finding in [f for f in FINDINGS if f in counts]:
            rows = in_scope[in_scope["finding"] == finding]
            with st.expander(f"{FINDINGS[finding]} ({len(rows)})", expanded=finding in counts.index[:1]):
                st.markdown(
                    "\n".join(
                        f"- {badge(finding)} **{plain(r.key_name, None)}**: {plain(r.detail, None)}"
                        for r in rows.itertuples(index=False)
                    )
                )
        listed = in_scope.assign(since=in_scope["since"].map(lambda t: local_time(t, filters.tz)))
        st.download_button(
            "Download findings (CSV)",
            csv_frame(listed),
            file_name=f"key_findings_{now:%Y%m%d}.csv",
            mime="text/csv",
            key="download_findings",
        )

with tab_delete:
    candidates = deletion_candidates(shown, stale)
    if candidates.empty:
        st.success("No stale keys: every key shown was used recently.")
    else:
        st.caption(
            "Keys never used or idle past their environment's threshold, with the evidence for deleting "
            "them. Confirm with the owner, then delete upstream and from the config."
        )
        evidence = pd.DataFrame(
            {
                "key": candidates["key_name"],
                "environment": candidates["environment"],
                "owner": candidates["owner"].fillna("— none —"),
                "finding": candidates["finding"],
                "evidence": candidates["detail"],
                "created": candidates["created_at"].map(lambda t: local_time(t, filters.tz)),
                "last used at": candidates["last_used_at"].map(lambda t: local_time(t, filters.tz)),
                "calls 30d": candidates["calls_30d"].fillna(0).astype("int64"),
                "other findings": candidates["other_findings"],
            }
        )
        st.dataframe(evidence, hide_index=True, width="stretch")
        st.download_button(
            "Download deletion candidates (CSV)",
            csv_frame(evidence),
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
