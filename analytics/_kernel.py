"""The detector's per-point pass, compiled: one loop over each series' points, every series in one call.

`analytics.anomalies` explains the model; this module only runs it.  The state of a series at point t
depends on its points before t only, so the score at t is causal, and series never share state, so
the result for one column is the same whatever other columns are scored with it.  Compiled with numba:
the pass is a recursion over time (each point's forecast needs the state the last one left), which
numpy can only vectorise across series, paying its per-call overhead once per point per operation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_MEAN_ABS_TO_SIGMA = 1.2533  # the mean absolute deviation of a normal variable is sigma * sqrt(2 / pi)


@njit(cache=True, error_model="numpy")
def _spread(sigma, seen, expected, unit, count_like, warmup, rel_floor, count_floor, count_floor_sqrt):
    """(spread, count-noise bound) of one point: the scale a deviation is measured in, and if counts set it."""
    warm = math.sqrt(1.0 + warmup / max(seen, 1.0))
    abs_e = abs(expected) if math.isfinite(expected) else 0.0
    floor = rel_floor * abs_e
    counts = unit * max(count_floor, count_floor_sqrt * math.sqrt(abs_e / unit))
    if count_like:
        floor = max(floor, counts)
    model = sigma * warm
    return (model if model >= floor else floor), (count_like and counts >= model)


@njit(cache=True, error_model="numpy")
def _tail_factor(rates, log_levels, p_tail, ref):
    """max(1, u / ref), u the |z| exceeded at rate `p_tail`, interpolated log-log on the level grid."""
    n_levels = rates.shape[0]
    j = n_levels - 1
    for i in range(n_levels):
        if not rates[i] > p_tail:
            j = i
            break
    lo = max(j - 1, 0)
    r_hi = max(rates[j], 1e-12)
    r_lo = max(rates[lo], 1e-12)
    frac = 0.0
    if j > 0 and r_lo > r_hi:
        frac = (math.log(r_lo) - math.log(p_tail)) / (math.log(r_lo) - math.log(r_hi))
        frac = min(max(frac, 0.0), 1.0)
    log_u = log_levels[lo] + frac * (log_levels[j] - log_levels[lo])
    return max(math.exp(log_u) / ref, 1.0)


@njit(cache=True, error_model="numpy")
def score_columns(
    x,  # (m, n) values, one row per series
    slots,  # (s, n) slot of each point in each season
    n_slots,  # (s,) slots per season
    per_slot,  # (s,) points per slot per cycle
    f,  # float parameters, in the order of `anomalies._FLOAT_PARAMS`
    levels,  # (L,) |z| grid of the tail's exceedance rates
    normal_rates,  # (L,) a normal variable's exceedance rates at those levels (the prior)
    out,  # (6, m, n) expected, spread, tail factor, score, level, dev
):
    (level_window, spread_window, season_depth, slot_min_history, min_history, warmup, switch_ratio, fit_clip,
     scale_band, level_band, regime_points, shift_points, shift_memory, raw_floor, rel_floor, count_floor,
     count_floor_sqrt, unit_prior, unit_cap, unit_max_z, run_points, run_min_z, drop_boost, z_half,
     tail_quantile, tail_window, tail_prior, tail_alert_weight, episode_z, episode_gap, episode_growth,
     z_alert) = (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], f[14],
                 f[15], f[16], f[17], f[18], f[19], f[20], f[21], f[22], f[23], f[24], f[25], f[26], f[27],
                 f[28], f[29], f[30], f[31])  # fmt: skip
    m, n = x.shape
    s_count = slots.shape[0]
    k = 1 + s_count
    shift = max(int(shift_points), 1)
    lag = max(int(run_points), 1)
    a_level = 2.0 / (level_window + 1.0)
    a_scale = 2.0 / (spread_window + 1.0)
    a_season = np.empty(s_count)
    min_slot = np.empty(s_count)
    max_slots = 1
    for c in range(s_count):
        a_season[c] = 2.0 / (season_depth * per_slot[c] + 1.0)
        min_slot[c] = slot_min_history * per_slot[c]
        max_slots = max(max_slots, n_slots[c])
    log_levels = np.log(levels)
    n_levels = levels.shape[0]
    p_tail = 1.0 - tail_quantile
    ref = levels[0]
    z_half2 = z_half * z_half
    held_level = episode_z * episode_z / (episode_z * episode_z + z_half2)

    profile = np.zeros((s_count, max_slots))
    n_prof = np.zeros((s_count, max_slots))
    level = np.zeros(k)
    n_level = np.zeros(k)
    mad = np.zeros(k)
    raw = np.zeros(k)
    n_mad = np.zeros(k)
    fit = np.zeros(k)
    out_run = np.zeros(k)
    side_run = np.zeros(k)
    recent = np.empty((k, shift))
    prev_level = np.zeros(k)
    remember = np.zeros(k)
    seas = np.zeros(k)
    ok = np.ones(k, dtype=np.bool_)
    pred = np.zeros(k)
    sigma = np.zeros(k)
    inside = np.zeros(k, dtype=np.bool_)
    resid = np.zeros(k)
    xw = np.zeros(k)
    ready = np.zeros(k, dtype=np.bool_)
    candidates = np.zeros(lag)
    last = np.zeros(lag)
    runs = np.zeros(lag)
    past = np.zeros(lag)  # the last `lag` count-bound signed deviations, for the run evidence
    rates = np.empty(n_levels)

    for j in range(m):
        profile[:] = 0.0
        n_prof[:] = 0.0
        level[:] = 0.0
        n_level[:] = 0.0
        mad[:] = 0.0
        raw[:] = 0.0
        n_mad[:] = 0.0
        fit[:] = 0.0
        out_run[:] = 0.0
        side_run[:] = 0.0
        recent[:] = np.nan
        prev_level[:] = 0.0
        remember[:] = 0.0
        candidates[:] = 0.0
        last[:] = 0.0
        runs[:] = 0.0
        past[:] = 0.0
        rates[:] = normal_rates
        best = 0
        count_like = True
        burst_sum = 0.0
        burst_sq = 0.0
        streak = 0.0
        prev_lean = 0.0
        non_negative = True
        sil_total = 0.0
        sil_var = 0.0
        weight = tail_prior
        alerted = 0.0
        gap = episode_gap + 1.0
        side = 0.0
        for t in range(n):
            xt = x[j, t]
            valid = math.isfinite(xt)
            xv = xt if valid else 0.0
            if valid and not (xv % 1.0 == 0.0 and xv >= 0.0):
                count_like = False
            for c in range(1, k):
                slot = slots[c - 1, t]
                seas[c] = profile[c - 1, slot]
                ok[c] = n_prof[c - 1, slot] >= min_slot[c - 1]
            for c in range(k):
                pred[c] = level[c] + seas[c]
                sigma[c] = _MEAN_ABS_TO_SIGMA * max(mad[c], raw_floor * raw[c])
                # Recovery: back to the level from before the last re-anchoring (see `anomalies`).
                if remember[c] > 0.0:
                    band0 = scale_band * sigma[c]
                    if valid and abs(xv - prev_level[c] - seas[c]) <= band0 and abs(xv - pred[c]) > band0:
                        level[c] = prev_level[c]
                        pred[c] = level[c] + seas[c]
                        remember[c] = 0.0
                    elif valid:
                        remember[c] = max(remember[c] - 1.0, 0.0)

            # Model choice, with hysteresis (see `anomalies`).
            if not (ok[best] and n_level[best] > 0.0 and n_mad[best] >= min_history):
                best = 0
            usable_best = ok[best] and n_level[best] > 0.0 and n_mad[best] >= min_history
            best_fit = fit[best] if usable_best else np.inf
            for c in range(k):
                if ok[c] and n_level[c] > 0.0 and n_mad[c] >= min_history and fit[c] < switch_ratio * best_fit:
                    best = c
                    best_fit = fit[c]
            usable_best = ok[best] and n_level[best] > 0.0 and n_mad[best] >= min_history
            e_t = pred[best] if usable_best else np.nan
            sig_t = sigma[best]
            seen_t = n_mad[best]
            unit = (burst_sq + unit_prior) / (burst_sum + unit_prior)
            spread, bound = _spread(sig_t, seen_t, e_t, unit, count_like, warmup, rel_floor, count_floor,
                                    count_floor_sqrt)  # fmt: skip

            # The burst unit u = E[X^2] / E[X] over burst sizes X, from values where less than one was due; a
            # value teaches it only `run_points - 1` points later, once no run through it adds up to an incident.
            burst = valid and xv > 0.0 and e_t < 1.0 and abs(xv - e_t) < unit_max_z * spread
            signed_b = (xv - e_t) / spread if (valid and bound and math.isfinite(e_t)) else 0.0
            lean = 0.0
            if abs(signed_b) >= run_min_z:
                lean = 1.0 if signed_b > 0 else (-1.0 if signed_b < 0 else 0.0)
            if lean == 0.0:
                streak = 0.0
            elif lean == prev_lean:
                streak += 1.0
            else:
                streak = 1.0
            prev_lean = lean
            last[t % lag] = signed_b
            total = 0.0
            for i in range(lag):
                total += last[i]
            runs[t % lag] = abs(total) / math.sqrt(lag) if streak >= lag else 0.0
            candidates[t % lag] = min(xv, unit_cap) if burst else 0.0
            if t >= lag - 1:
                worst = 0.0
                for i in range(lag):
                    worst = max(worst, runs[i])
                if worst < unit_max_z:
                    size = candidates[(t + 1) % lag]
                    burst_sum += size
                    burst_sq += size * size

            # Model updates.
            for c in range(k):
                resid[c] = xv - pred[c]
                ready[c] = n_mad[c] >= min_history
                band = scale_band * sigma[c]
                inside[c] = abs(resid[c]) <= band or not ready[c]
            ordinary = inside[best] and remember[best] == 0.0
            for c in range(k):
                r = resid[c]
                band = scale_band * sigma[c]
                lband = level_band * sigma[c]
                clipped = min(max(r, -band), band) if ready[c] else r
                xw[c] = pred[c] + (min(max(r, -lband), lband) if ready[c] else r)
                fresh = n_level[c] == 0.0
                if valid:
                    if fresh:
                        level[c] = xv - seas[c]
                    else:
                        a_l = max(a_level, 1.0 / (n_level[c] + 1.0))
                        level[c] = level[c] + a_l * (xw[c] - seas[c] - level[c])
                a_m = max(a_scale, 1.0 / (n_mad[c] + 1.0))
                grow = valid and not fresh
                if valid:
                    out_run[c] = 0.0 if inside[c] else out_run[c] + 1.0
                if grow and (inside[c] or out_run[c] > regime_points):
                    mad[c] = mad[c] + a_m * (abs(clipped) - mad[c])
                if grow:
                    raw[c] = raw[c] + a_m * (abs(r) - raw[c])
                    if ready[c]:
                        if ordinary:
                            fit[c] = fit[c] + a_m * (min(abs(r), fit_clip * sigma[c]) - fit[c])
                    else:
                        fit[c] = mad[c]
                    n_mad[c] += 1.0
                if valid:
                    n_level[c] += 1.0
                # Re-anchoring after a shift that holds on one side.
                if valid:
                    sd = 0.0 if inside[c] else (1.0 if r > 0 else (-1.0 if r < 0 else 0.0))
                    sr = side_run[c]
                    sign_sr = 1.0 if sr > 0 else (-1.0 if sr < 0 else 0.0)
                    side_run[c] = sr + sd if (sd != 0.0 and sign_sr == sd) else sd
                recent[c, t % shift] = xv - seas[c] if valid else np.nan
                if valid and ready[c] and abs(side_run[c]) >= shift:
                    prev_level[c] = level[c]
                    remember[c] = shift_memory
                    level[c] = np.nanmedian(recent[c])
                    side_run[c] = 0.0
                    out_run[c] = 0.0
                if c >= 1 and valid:
                    slot = slots[c - 1, t]
                    cnt = n_prof[c - 1, slot]
                    old = profile[c - 1, slot]
                    a_s = max(a_season[c - 1], 1.0 / (cnt + 1.0))
                    target = (xv if cnt < min_slot[c - 1] else xw[c]) - level[c]
                    profile[c - 1, slot] = old + a_s * (target - old)
                    n_prof[c - 1, slot] = cnt + 1.0

            # Evidence: the deviation, a drop's depth, runs of count noise, runs of silence.
            if valid and xv < 0.0:
                non_negative = False
            dev = xv - e_t if valid else np.nan
            signed = dev / spread if (math.isfinite(dev) and dev != 0.0) else 0.0
            abs_e = abs(e_t) if math.isfinite(e_t) else 0.0
            depth = 0.0
            if non_negative and dev < 0.0:
                d = min(max(-dev / abs_e, 0.0), 1.0)
                if math.isfinite(d):
                    depth = d
            z = abs(signed) * (1.0 + (drop_boost - 1.0) * depth**4)
            counted = signed if bound else 0.0
            for i in range(lag - 1, 0, -1):
                past[i] = past[i - 1]
            past[0] = counted
            run_z = 0.0
            if abs(counted) >= run_min_z:
                run_total = counted
                for i in range(1, lag):
                    prev = past[i] if t - i >= 0 else 0.0
                    same_sign = (prev > 0) == (counted > 0) and (prev < 0) == (counted < 0)
                    if not (same_sign and abs(prev) >= run_min_z):
                        break
                    run_total += prev
                    run_z = max(run_z, abs(run_total) / math.sqrt(i + 1.0))
            z = max(z, run_z)
            silent = valid and xv == 0.0 and non_negative and e_t > 0.0
            if silent:
                sil_total += e_t
                sil_var += spread * spread
                if sil_var > 0.0:
                    z = max(z, drop_boost * sil_total / math.sqrt(sil_var))
            else:
                sil_total = 0.0
                sil_var = 0.0
            if not math.isfinite(z):
                z = 1e12

            # Tail, level and alert score (stage 4 in `anomalies`).
            ramp = min(1.0, seen_t / warmup)
            factor = _tail_factor(rates, log_levels, p_tail, ref)
            ze = z / factor
            lv = ze * ze / (ze * ze + z_half2) * ramp
            sgn = 1.0 if signed > 0 else (-1.0 if signed < 0 else 0.0)
            active = valid and ze >= episode_z
            if active and (gap > episode_gap or sgn != side):
                alerted = 0.0
            past_line = active and ze >= z_alert
            new = past_line and (alerted == 0.0 or ze >= episode_growth * alerted)
            score = min(lv, held_level) if (past_line and not new) else lv
            if new:
                alerted = ze
            if active:
                side = sgn
                gap = 0.0
            else:
                gap += 1.0
            if valid and ramp > 0.0:
                w = tail_alert_weight if ze >= z_alert else 1.0
                weight = min(weight + w, tail_window)
                a = w / weight
                for i in range(n_levels):
                    rates[i] += a * ((1.0 if z > levels[i] else 0.0) - rates[i])

            out[0, j, t] = e_t
            out[1, j, t] = spread
            out[2, j, t] = factor
            out[3, j, t] = score
            out[4, j, t] = lv
            out[5, j, t] = dev
