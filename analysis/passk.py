"""pass@k: the chance that at least one of k attempts succeeds (a medal, by default).

Per competition with n attempts of which c succeed, the unbiased estimator is
1 − C(n−c, k) / C(n, k); the split's pass@k is its mean over competitions, in percent,
for k = 1 … n (n = the smallest attempt count across the split's competitions).
"""

from __future__ import annotations

from math import comb
from typing import List, Optional

import pandas as pd

from .tables import competitions_of, group_keys


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 − C(n−c, k)/C(n, k) for n attempts, c successes; k must be in 1…n."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_at_k_table(df: pd.DataFrame, split: str, metric: str = "any_medal", pad_missing: bool = False,
                    by: Optional[List[str]] = None) -> pd.DataFrame:
    """Rows (group…, k, n_competitions, pass_at_k %) for k = 1 … n. A competition with no attempts
    is an error unless `pad_missing`, which counts it as never solved."""
    by = by or group_keys(df)
    ids = competitions_of(split, df)
    rows = []
    for key, group in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        counts = group.groupby("competition_id")[metric].agg(["size", "sum"])
        nc = [(int(counts.at[cid, "size"]), int(counts.at[cid, "sum"])) if cid in counts.index else (0, 0)
              for cid in ids]
        present = [n for n, _ in nc if n > 0]
        if not present or (len(present) < len(ids) and not pad_missing):
            continue
        for k in range(1, min(present) + 1):
            values = [pass_at_k(n, c, k) if n else 0.0 for n, c in nc]
            rows.append({**dict(zip(by, key)), "split": split, "k": k, "n_competitions": len(ids),
                         "pass_at_k": 100.0 * sum(values) / len(values)})
    return pd.DataFrame(rows, columns=by + ["split", "k", "n_competitions", "pass_at_k"])
