"""The independent Kelly oracle: scipy's root of the first-order condition (DESIGN section 8).

Used to write contracts/golden/kelly.json (which cargo test and pytest hold both languages to) and
by the hypothesis test in tests/serving. It shares no code with backtest/sizing.py's Newton steps.
"""

from __future__ import annotations

import numpy as np


def scipy_kelly(p: np.ndarray, r: np.ndarray, cost: float, kelly_max: float) -> float:
    """Return argmax_f sum p log(1 + f (r - c sign f)) with |f| <= kelly_max, found by scipy.

    The objective is concave on each side of 0; on the side whose slope at 0 is positive, brentq
    finds the zero of the slope inside the domain 1 + f a > 0 (or the bound kelly_max).
    """
    from scipy.optimize import brentq

    p, r = np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)
    live = p > 0
    p, r = p[live], r[live]
    for side, a in ((1.0, r - cost), (-1.0, -(r + cost))):
        if float(p @ a) <= 0.0:
            continue

        def slope(h: float, a: np.ndarray = a) -> float:
            return float(p @ (a / (1.0 + h * a)))

        dom = -1.0 / a.min() if a.min() < 0 else np.inf
        hi = min(kelly_max, dom * (1 - 1e-15))
        if slope(hi) >= 0.0:
            return side * hi
        return side * brentq(slope, 0.0, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
    return 0.0
