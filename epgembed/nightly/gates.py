"""The nightly job's decisions, as pure functions of what a run measured: its config, the
input gate, the consistency and catalog gates (a feed that parses but is not the same
feed), and the quality gate. Each returns the reasons to refuse a night (empty: accept)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class NightlyConfig:
    history_nights: int = 14        # a show seen in the last N nights received stays in the
                                    # catalog (by count of nights, never by the dumps' dates)
    keep: int = 7                   # versions kept (the current one always stays)
    tolerance: float = 0.03         # largest allowed held-out P@10d drop vs the current version
    min_lift_over_random: float = 0.05   # P@10d must beat the random baseline by this much
    min_test_queries: int = 20      # fewer held-out queries than this: quality unmeasurable
    min_input_ratio: float = 0.5    # tonight vs the median of recent nights (counts, shares)
    recent_nights: int = 7
    holdout_fraction: float = 0.2   # EVALUATION.md: 20% of the items
    holdout_seed: int = 0
    warm_start: bool = True         # measured in bench/nightly.py (docs/NIGHTLY.md)
    warm_lr: float | None = 0.05    # learning rate when warm-starting (None: the model's lr);
                                    # a fine-tune keeps neighbours stable (docs/NIGHTLY.md)
    warm_patience: int | None = 1   # early-stopping patience when warm-starting (None: model's)
    stability_k: int = 10
    keep_reports: int = 200
    night: str | None = None        # YYYY-MM-DD; None: from the programmes' start times
    # Consistency gates (a broken feed that still parses); `force` accepts a night they refuse.
    max_date_gap_days: int = 7      # tonight's date this far outside the recent nights' dates
    max_catalog_drop: float = 0.3   # share of the current catalog's shows tonight would drop
    min_shared_categories: float = 0.5   # share of the last night's category names kept
    min_label_agreement: float = 0.5     # shows whose categories overlap their past ones
    force: bool = False


def input_reasons(stats: dict, recent: list[dict], file_errors: list[str], ratio: float,
                  stored: dict | None = None) -> list[str]:
    """Why tonight's input looks broken (empty list: it looks fine). `stored`: the meta of
    the night the history already holds for tonight's date, compared like the median."""
    reasons = [f"dump failed to parse: {e}" for e in file_errors]
    if stats["programmes"] == 0:
        return reasons + ["no programmes in tonight's input"]
    if stats["labelled_share"] == 0:
        reasons.append("no categories on any programme")
    same = (stored or {}).get("stats") or {}
    for name, label in (("programmes", "programmes"), ("shows", "shows"),
                        ("labelled_share", "programmes with categories (share)")):
        values = [r[name] for r in recent if name in r]
        if values and stats[name] < ratio * statistics.median(values):
            reasons.append(f"far fewer {label} than recent nights: {stats[name]:,} vs median "
                           f"{statistics.median(values):,} of the last {len(values)}")
        elif name in same and stats[name] < ratio * same[name]:
            reasons.append(f"far fewer {label} than the stored night {stored['night']}: "
                           f"{stats[name]:,} vs {same[name]:,}")
    return reasons


def shrink_reasons(stats: dict, stored: dict | None) -> list[str]:
    """Why tonight's dump may not replace the night the history holds for its date
    (`stored`: that night's meta): it has fewer programmes or shows. A night is replaced
    whole, so a partial dump would drop the rest of it (and shows with it)."""
    same = (stored or {}).get("stats") or {}
    fewer = [f"from {same[k]:,} to {stats[k]:,} {k}" for k in ("programmes", "shows")
             if k in same and k in stats and stats[k] < same[k]]
    if not fewer:
        return []
    return [f"tonight's dump would shrink the stored night {stored['night']} "
            f"({' and '.join(fewer)}); the stored night is kept (--force replaces it)"]


def consistency_reasons(night: date, stats: dict, names: list[str], recent: list[dict],
                        ncfg: NightlyConfig, stored: dict | None = None) -> list[str]:
    """Why tonight's dump, although it parses, does not look like the same feed as the
    recent nights (`recent`: their meta files, oldest first), or would shrink the night
    the history holds for its date (`stored`). `force` accepts these."""
    reasons = shrink_reasons(stats, stored)
    dates = sorted(date.fromisoformat(m["night"]) for m in recent if m.get("night"))
    if dates and not (dates[0] - timedelta(days=ncfg.max_date_gap_days) <= night
                      <= dates[-1] + timedelta(days=ncfg.max_date_gap_days)):
        reasons.append(f"dump dated {night.isoformat()}, far outside the recent nights "
                       f"({dates[0].isoformat()} .. {dates[-1].isoformat()}, more than "
                       f"{ncfg.max_date_gap_days} days): mis-dated, or a gap in the feed "
                       "(--night sets the date, --force accepts it)")
    usable = [m["stats"]["usable_categories"] for m in recent
              if "usable_categories" in m.get("stats", {})]
    if usable and stats["usable_categories"] < ncfg.min_input_ratio * statistics.median(usable):
        reasons.append(f"far fewer usable categories than recent nights: "
                       f"{stats['usable_categories']} vs median {statistics.median(usable):g} "
                       "(collapsed or placeholder categories)")
    known = next((set(m["category_names"]) for m in reversed(recent) if m.get("category_names")), None)
    if known:
        shared = len(known & set(names)) / len(known)
        if shared < ncfg.min_shared_categories:
            reasons.append(f"only {shared:.0%} of the last night's {len(known)} category names "
                           "appear tonight (renamed categories?)")
    return reasons


def catalog_reasons(agreement: float | None, changes: dict, current_shows: int,
                    ncfg: NightlyConfig) -> list[str]:
    """Why the catalog tonight would build is not a plausible next version of the current."""
    reasons = []
    if agreement is not None and agreement < ncfg.min_label_agreement:
        reasons.append(f"only {agreement:.0%} of the shows labelled in recent nights keep any "
                       "of their categories tonight (shuffled or renamed labels)")
    if current_shows and changes.get("dropped", 0) > ncfg.max_catalog_drop * current_shows:
        reasons.append(f"tonight would drop {changes['dropped']:,} of the current "
                       f"{current_shows:,} shows (more than {ncfg.max_catalog_drop:.0%}; "
                       "--force accepts it)")
    return reasons


GATED_FIGURE, GATED_NAME = "p_at_10d", "P@10d"   # the editor's view: one answer per series


def quality_reasons(new: dict, current: dict | None, rand: dict, ncfg: NightlyConfig) -> list[str]:
    """Why the new model's held-out quality (P@10d, EVALUATION.md) is not good enough to publish."""
    if new["n_test"] < ncfg.min_test_queries:
        return [f"only {new['n_test']} held-out queries (< {ncfg.min_test_queries}): "
                "quality cannot be measured"]
    reasons, f, name = [], GATED_FIGURE, GATED_NAME
    if rand[f] is not None and new[f] < rand[f] + ncfg.min_lift_over_random:
        reasons.append(f"{name} {new[f]:.3f} is not clearly above random "
                       f"({rand[f]:.3f} + {ncfg.min_lift_over_random})")
    if current and current.get(f) is not None and new[f] < current[f] - ncfg.tolerance:
        reasons.append(f"{name} dropped from {current[f]:.3f} (current) to "
                       f"{new[f]:.3f} (tolerance {ncfg.tolerance})")
    return reasons
