"""Publish the portfolio risk state the scorer's drawdown kill switch reads (DESIGN section 8).

The backtest engine calls ``publish_risk_state`` from its replay (a portfolio service would in
production). The message follows contracts/risk_state.schema.json and goes to the contract's
``risk_state`` subject; the scorer zeroes every size while ``kill`` is true or the intraday drawdown
reaches ``max_intraday_drawdown`` (contracts/sizing.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from feature_store import schema_check
from feature_store.contract import STREAMING

RISK_SCHEMA = "risk_state.schema.json"


@dataclass(frozen=True)
class RiskSnapshot:
    """One risk state: when (UTC ns), NAV, drawdown from today's peak (fraction), kill switch."""

    ts: int
    nav: float
    intraday_drawdown: float
    kill: bool = False

    @classmethod
    def from_equity(cls, ts: int, nav: float, day_peak_nav: float, *, kill: bool = False) -> RiskSnapshot:
        """Build from the NAV and today's peak NAV (drawdown = 1 - nav / peak, floored at 0)."""
        drawdown = max(0.0, 1.0 - nav / day_peak_nav) if day_peak_nav > 0 else 0.0
        return cls(ts=int(ts), nav=float(nav), intraday_drawdown=min(drawdown, 1.0), kill=bool(kill))


def encode_risk_state(state: RiskSnapshot | dict) -> bytes:
    """Check a risk state against its schema and return the wire JSON (ContractError if invalid)."""
    raw = asdict(state) if isinstance(state, RiskSnapshot) else dict(state)
    schema_check.check(raw, RISK_SCHEMA, "risk state")
    return json.dumps(raw, separators=(",", ":"), allow_nan=False).encode()


async def publish_risk_state(nc, state: RiskSnapshot | dict) -> None:
    """Publish ``state`` on the risk_state subject over a connected nats-py client and flush it.

    Core NATS (not JetStream): the scorer wants the latest state, and a replay publishes often.
    """
    await nc.publish(STREAMING.subject("risk_state"), encode_risk_state(state))
    await nc.flush()
