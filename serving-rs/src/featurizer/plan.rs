//! What the incremental featurizer keeps to compute a feature set: window sums, rings, formulas.
//!
//! A port of `feature_store/streaming/plan.py`: each feature's kind and window decide which
//! trailing (aggregate, window) sums the state keeps, in the same sorted order, and the formula
//! that turns them into the value, with the same floating-point operations in the same order
//! (so values equal the Python featurizer's and stay within an ulp or two of the batch path).

use super::feature_set::{FeatureSet, Kind};

/// The per-second aggregates, in `plan.AGGS` order.
pub const AGGS: [&str; 11] = [
    "n_trades",
    "volume",
    "s_tick",
    "s_quote",
    "n_sized",
    "log_sum",
    "log2_sum",
    "block_vol",
    "n_quotes",
    "r2",
    "nz_r",
];
pub const N_AGGS: usize = AGGS.len();
pub const N_TRADES: usize = 0;
pub const VOLUME: usize = 1;
pub const S_TICK: usize = 2;
pub const S_QUOTE: usize = 3;
pub const N_SIZED: usize = 4;
pub const LOG_SUM: usize = 5;
pub const LOG2_SUM: usize = 6;
pub const BLOCK_VOL: usize = 7;
pub const N_QUOTES: usize = 8;
pub const R2: usize = 9;
pub const NZ_R: usize = 10;
pub const NS_PER_S: i64 = 1_000_000_000;

/// One feature's formula over the window sums `V` (indices into the plan's sums).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Formula {
    Ret {
        n: usize,
    },
    /// `V[num] / V[den]` when `V[den] > 0`, else 0 (tick/quote imbalance, block share).
    Ratio {
        num: usize,
        den: usize,
    },
    Mean {
        s1: usize,
        n: usize,
    },
    Std {
        s1: usize,
        s2: usize,
        n: usize,
    },
    /// A count over the window divided by the seconds the window holds so far.
    Rate {
        c: usize,
        w: usize,
    },
    LogVolume {
        vol: usize,
    },
    MidRv {
        r2: usize,
        nz: usize,
        w: usize,
        year: f64,
    },
    Spread,
    Micro,
    Book,
    SinceOpen,
    ToClose,
}

/// Sums `(aggregate, window, ring)` in a fixed order, the aggregates kept in rings, formulas.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sums: Vec<(usize, usize, usize)>,
    pub ring_aggs: Vec<usize>,
    pub ring_len: usize,
    pub lp_len: usize,
    pub block_size: f64,
    pub var_snap: f64,
    pub formulas: Vec<Formula>,
}

fn needs(kind: &Kind) -> (&'static [usize], usize) {
    match *kind {
        Kind::TickImb { w } => (&[S_TICK, VOLUME], w),
        Kind::QuoteImb { w } => (&[S_QUOTE, VOLUME], w),
        Kind::LogSizeMean { w } => (&[LOG_SUM, N_SIZED], w),
        Kind::LogSizeStd { w } => (&[LOG_SUM, LOG2_SUM, N_SIZED], w),
        Kind::BlockShare { w, .. } => (&[BLOCK_VOL, VOLUME], w),
        Kind::TradeRate { w } => (&[N_TRADES], w),
        Kind::QuoteRate { w } => (&[N_QUOTES], w),
        Kind::LogVolume { w } => (&[VOLUME], w),
        Kind::MidRv { w, .. } => (&[R2, NZ_R], w),
        _ => (&[], 0),
    }
}

impl Plan {
    pub fn new(fs: &FeatureSet) -> Plan {
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for f in &fs.features {
            let (aggs, w) = needs(&f.kind);
            pairs.extend(aggs.iter().map(|&a| (a, w)));
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut ring_aggs: Vec<usize> = pairs.iter().map(|&(a, _)| a).collect();
        ring_aggs.dedup();
        let ring_of = |a: usize| ring_aggs.iter().position(|&r| r == a).unwrap_or(0);
        let sums: Vec<(usize, usize, usize)> = pairs.iter().map(|&(a, w)| (a, w, ring_of(a))).collect();
        let index = |a: usize, w: usize| sums.iter().position(|&(sa, sw, _)| sa == a && sw == w).unwrap_or(0);
        let ring_len = pairs.iter().map(|&(_, w)| w).max().unwrap_or(1);
        let lp_len = fs
            .features
            .iter()
            .filter_map(|f| if let Kind::Ret { n } = f.kind { Some(n) } else { None })
            .max()
            .unwrap_or(0)
            + 1;
        let block_size = fs
            .features
            .iter()
            .find_map(|f| if let Kind::BlockShare { block_size, .. } = f.kind { Some(block_size) } else { None })
            .unwrap_or(f64::INFINITY);
        let formulas = fs
            .features
            .iter()
            .map(|f| match f.kind {
                Kind::Ret { n } => Formula::Ret { n },
                Kind::TickImb { w } => Formula::Ratio { num: index(S_TICK, w), den: index(VOLUME, w) },
                Kind::QuoteImb { w } => Formula::Ratio { num: index(S_QUOTE, w), den: index(VOLUME, w) },
                Kind::BlockShare { w, .. } => Formula::Ratio { num: index(BLOCK_VOL, w), den: index(VOLUME, w) },
                Kind::LogSizeMean { w } => Formula::Mean { s1: index(LOG_SUM, w), n: index(N_SIZED, w) },
                Kind::LogSizeStd { w } => {
                    Formula::Std { s1: index(LOG_SUM, w), s2: index(LOG2_SUM, w), n: index(N_SIZED, w) }
                }
                Kind::TradeRate { w } => Formula::Rate { c: index(N_TRADES, w), w },
                Kind::QuoteRate { w } => Formula::Rate { c: index(N_QUOTES, w), w },
                Kind::LogVolume { w } => Formula::LogVolume { vol: index(VOLUME, w) },
                Kind::MidRv { w, year_seconds } => {
                    Formula::MidRv { r2: index(R2, w), nz: index(NZ_R, w), w, year: year_seconds }
                }
                Kind::SpreadBps => Formula::Spread,
                Kind::MicropriceBps => Formula::Micro,
                Kind::BookImbalance => Formula::Book,
                Kind::SecsSinceOpen => Formula::SinceOpen,
                Kind::SecsToClose => Formula::ToClose,
            })
            .collect();
        Plan { sums, ring_aggs, ring_len, lp_len, block_size, var_snap: fs.var_snap, formulas }
    }
}

/// `plan._std`: the window's standard deviation of log sizes, snapped to 0 below float noise.
pub fn std(s1: f64, s2: f64, n: f64, var_snap: f64) -> f64 {
    let mean = if n > 0.0 { s1 / n } else { 0.0 };
    let var = (if n > 0.0 { s2 / n } else { 0.0 }) - mean * mean;
    if var > var_snap * (1.0 + mean * mean) {
        var.sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::feature_set::TICK_V2;
    use super::*;

    #[test]
    fn tick_v2_plan_keeps_sorted_sums_and_the_longest_windows() {
        let plan = Plan::new(&TICK_V2);
        let pairs: Vec<(usize, usize)> = plan.sums.iter().map(|&(a, w, _)| (a, w)).collect();
        let mut sorted = pairs.clone();
        sorted.sort_unstable();
        assert_eq!(pairs, sorted);
        assert_eq!(plan.ring_len, 300);
        assert_eq!(plan.lp_len, 601);
        assert_eq!(plan.block_size, 10_000.0);
        assert_eq!(plan.formulas.len(), TICK_V2.features.len());
        assert_eq!(plan.ring_aggs, (0..N_AGGS).collect::<Vec<_>>());
    }
}
