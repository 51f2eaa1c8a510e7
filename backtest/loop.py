"""The event loop of the backtest engine: one compiled pass over time-ordered bar events.

Each event is one bar of one symbol (``sym``), in (ts, symbol) order. Per event, in order:
1. futures roll (``roll``): charge the roll cost on the held notional; for an unadjusted series
   (``remark``) move the position from the old contract's last close to the new one's open in
   cash, so the gap between contracts is not P&L (a back-adjusted series has no gap to remove);
2. fill the symbol's pending order at this bar's OPEN if the bar is tradable (in session, not
   halted): the next tradable price after the decision; fill price = open * (1 + side *
   (half_spread + slippage)), fee on the notional at the open;
3. mark the position at the CLOSE (NAV = cash + sum of positions at their last close);
4. intraday drawdown kill switch on the portfolio NAV against the session's peak (from the NAV the
   session opened with, so a daily bar's own loss counts): when hit, every
   position is flattened at its next tradable open and signals are ignored until the next session;
5. a new signal (``target`` not NaN) becomes an order for the next tradable bar: target exposure
   as a fraction of NAV (capped at ``max_nav_frac``) or target units; the order is capped at
   ``max_adv_share`` of ADV.
The kernel is plain Python compiled by numba; ``run_loop.py_func`` runs it uncompiled (same result).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SLIP_NONE, SLIP_SQRT, SLIP_LINEAR = 0, 1, 2
MODE_NAV, MODE_UNITS = 0, 1
KIND_FILL, KIND_ROLL, KIND_KILL = 0, 1, 2

# trade record columns (float64 matrix): event, sym, kind, qty, ref price, fill price, fee, spread cost, slippage cost
T_EVENT, T_SYM, T_KIND, T_QTY, T_REF, T_PX, T_FEE, T_SPREAD, T_SLIP = range(9)
N_TRADE_COLS = 9


@njit(cache=True, nogil=True)
def run_loop(  # noqa: PLR0913 - the kernel takes flat arrays on purpose (no objects in compiled code)
    sym,  # (n,) int64 symbol index
    day,  # (n,) int64 session id (the drawdown peak resets when it changes)
    open_,  # (n,) float64
    close,  # (n,) float64
    tradable,  # (n,) bool: in session and not halted
    target,  # (n,) float64: NaN = no new signal at this event
    adv,  # (n,) float64: average daily volume in units from PAST sessions; NaN = unknown (no cap, no impact)
    sigma,  # (n,) float64: daily return vol from past sessions; NaN = unknown
    half_spread,  # (n,) float64: half-spread as a fraction of price
    roll,  # (n,) bool: first bar of a new futures contract
    remark,  # (n_sym,) bool: unadjusted futures series (remove the roll gap in cash)
    mult,  # (n_sym,) float64 contract multiplier
    mode,  # MODE_NAV or MODE_UNITS
    fee,  # fraction of notional
    slip_model,
    slip_k,
    roll_cost,  # fraction of the rolled notional
    max_nav_frac,
    max_adv_share,
    max_dd,
    initial_cash,
):
    n = sym.shape[0]
    n_sym = mult.shape[0]
    pos = np.zeros(n_sym)
    last_px = np.full(n_sym, np.nan)
    pending = np.zeros(n_sym)
    nav_out = np.empty(n)
    cash_out = np.empty(n)
    gross_out = np.empty(n)
    traded_out = np.zeros(n)
    trades = np.empty((2 * n + n_sym + 1, N_TRADE_COLS))
    n_trades = 0
    cash = initial_cash
    value = 0.0  # sum pos * last_px * mult
    gross = 0.0  # sum |pos| * last_px * mult
    cur_day = -1
    peak = initial_cash
    killed = False
    for e in range(n):
        nav_before = cash + value  # NAV after the previous event
        s = sym[e]
        m = mult[s]
        p_open = open_[e]
        if roll[e] and pos[s] != 0.0:
            notional = abs(pos[s]) * p_open * m
            cost = notional * roll_cost
            cash -= cost
            if remark[s] and not math.isnan(last_px[s]):
                cash += pos[s] * (last_px[s] - p_open) * m
                value += pos[s] * (p_open - last_px[s]) * m
                gross += abs(pos[s]) * (p_open - last_px[s]) * m
                last_px[s] = p_open
            r = trades[n_trades]
            r[T_EVENT], r[T_SYM], r[T_KIND], r[T_QTY] = e, s, KIND_ROLL, pos[s]
            r[T_REF], r[T_PX], r[T_FEE], r[T_SPREAD], r[T_SLIP] = p_open, p_open, cost, 0.0, 0.0
            n_trades += 1
        q = pending[s]
        if q != 0.0 and tradable[e]:
            side = 1.0 if q > 0.0 else -1.0
            h = half_spread[e]
            slip = 0.0
            a = adv[e]
            if slip_model != SLIP_NONE and a > 0.0:
                part = abs(q) / a
                if slip_model == SLIP_SQRT:
                    sg = sigma[e]
                    slip = slip_k * sg * math.sqrt(part) if sg > 0.0 else 0.0
                else:
                    slip = slip_k * part
            px = p_open * (1.0 + side * (h + slip))
            f = abs(q) * p_open * m * fee
            cash -= q * px * m + f
            if not math.isnan(last_px[s]):  # re-mark the held position at the fill bar's open
                value += pos[s] * (p_open - last_px[s]) * m
                gross += abs(pos[s]) * (p_open - last_px[s]) * m
            last_px[s] = p_open
            old = pos[s]
            pos[s] = old + q
            value += q * p_open * m
            gross += (abs(pos[s]) - abs(old)) * p_open * m
            traded_out[e] = abs(q) * p_open * m
            r = trades[n_trades]
            r[T_EVENT], r[T_SYM], r[T_KIND], r[T_QTY] = e, s, KIND_FILL, q
            r[T_REF], r[T_PX], r[T_FEE] = p_open, px, f
            r[T_SPREAD], r[T_SLIP] = abs(q) * p_open * m * h, abs(q) * p_open * m * slip
            n_trades += 1
            pending[s] = 0.0
        p_close = close[e]
        if not math.isnan(last_px[s]):
            value += pos[s] * (p_close - last_px[s]) * m
            gross += abs(pos[s]) * (p_close - last_px[s]) * m
        last_px[s] = p_close
        nav = cash + value
        if day[e] != cur_day:  # the session's peak starts from the NAV it opened with
            cur_day = day[e]
            peak = nav_before
            killed = False
        if nav > peak:
            peak = nav
        if not killed and peak > 0.0 and 1.0 - nav / peak >= max_dd:
            killed = True
            for j in range(n_sym):
                pending[j] = -pos[j]
            r = trades[n_trades]
            r[T_EVENT], r[T_SYM], r[T_KIND], r[T_QTY] = e, -1, KIND_KILL, 0.0
            r[T_REF], r[T_PX], r[T_FEE], r[T_SPREAD], r[T_SLIP] = nav, peak, 0.0, 0.0, 0.0
            n_trades += 1
        t = target[e]
        if not killed and not math.isnan(t):
            cap_units = max_nav_frac * max(nav, 0.0) / (p_close * m)
            want = t * nav / (p_close * m) if mode == MODE_NAV else t
            want = min(max(want, -cap_units), cap_units)
            d = want - pos[s]
            a = adv[e]
            if a > 0.0:
                cap_adv = max_adv_share * a
                d = min(max(d, -cap_adv), cap_adv)
            pending[s] = d
        nav_out[e] = nav
        cash_out[e] = cash
        gross_out[e] = gross
    return nav_out, cash_out, gross_out, traded_out, trades[:n_trades].copy(), pos
