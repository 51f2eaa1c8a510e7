//! Incremental `tick_v2`: per-symbol state updated in O(1) per event, one row per symbol per second.
//!
//! A port of `feature_store/streaming/state.py` (read its docstring for the clock, the due sweep and
//! the heartbeat); the behaviour, the order rows close in and every floating-point operation are the
//! same, which is what holds the values to the batch path at ~1e-9 (the BAC parity test).
//! Sessions come from a [`SessionBook`] that Python wrote (exchange calendars live in Python).

use std::collections::{HashMap, VecDeque};

use super::plan::{self, Formula, Plan, NS_PER_S, NZ_R, N_AGGS, R2};

/// Exchange sessions `(open, close)` in UTC ns, sorted by open, covering `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct SessionBook {
    opens: Vec<i64>,
    closes: Vec<i64>,
    pub start: i64,
    pub end: i64,
}

impl SessionBook {
    /// Build from `(open, close)` pairs and the span they cover (an event outside it is "uncovered").
    pub fn new(mut pairs: Vec<(i64, i64)>, start: i64, end: i64) -> SessionBook {
        pairs.sort_unstable();
        pairs.dedup();
        SessionBook {
            opens: pairs.iter().map(|p| p.0).collect(),
            closes: pairs.iter().map(|p| p.1).collect(),
            start,
            end,
        }
    }

    /// The session holding `t` (open <= t <= close), as `SessionBook.find` in Python.
    pub fn find(&self, t: i64) -> Option<(i64, i64)> {
        let i = self.opens.partition_point(|&o| o <= t);
        if i == 0 {
            return None;
        }
        (t <= self.closes[i - 1]).then(|| (self.opens[i - 1], self.closes[i - 1]))
    }

    /// Read the sessions file Python writes (`mps.featurizer_process.write_sessions`):
    /// `{"calendar": "XNYS", "start": ns, "end": ns, "sessions": [[open_ns, close_ns], ...]}`.
    pub fn load(path: &std::path::Path, calendar: &str) -> crate::error::Result<SessionBook> {
        #[derive(serde::Deserialize)]
        struct File {
            calendar: String,
            start: i64,
            end: i64,
            sessions: Vec<(i64, i64)>,
        }
        let bytes = crate::error::read_file(path)?;
        let file: File = serde_json::from_slice(&bytes).map_err(|source| crate::error::ScorerError::Json {
            what: format!("sessions file {}", path.display()),
            source,
        })?;
        let bad = |message: String| crate::error::ScorerError::Config { path: path.display().to_string(), message };
        if file.calendar != calendar {
            return Err(bad(format!("calendar {} but the feature set uses {calendar}", file.calendar)));
        }
        if let Some((k, (o, c))) = file.sessions.iter().enumerate().find(|(_, (o, c))| o >= c) {
            return Err(bad(format!("sessions[{k}]: open {o} is not before close {c}")));
        }
        Ok(SessionBook::new(file.sessions, file.start, file.end))
    }

    pub fn covers(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }

    pub fn len(&self) -> usize {
        self.opens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.opens.is_empty()
    }
}

/// One symbol in one session: the open second's accumulators, the book, rings and window sums.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SymbolState {
    sym: u32,
    open: i64,
    close: i64,
    started: bool,
    next_sec: i64,
    idx: usize,
    acc_sec: i64,
    acc: [f64; N_AGGS],
    price: f64,
    prev_price: Option<f64>,
    tick: f64,
    bid: Option<f64>,
    bid_size: f64,
    ask: Option<f64>,
    ask_size: f64,
    prev_log_mid: Option<f64>,
    lp: Vec<f64>,
    rings: Vec<f64>,
    s: Vec<f64>,
    c: Vec<f64>,
    v: Vec<f64>,
    queued: bool,
}

/// A symbol-session's window buffers: log prices, rings, and the sums with their compensations.
type Buffers = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

impl SymbolState {
    fn new(sym: u32, session: (i64, i64), plan: &Plan) -> SymbolState {
        let n = plan.sums.len();
        let buffers = (
            vec![0.0; plan.lp_len],
            vec![0.0; plan.ring_len * plan.ring_aggs.len()],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
        );
        SymbolState::with_buffers(sym, session, buffers)
    }

    /// Reset a freed slot for a new symbol-session (keeps the allocations, zeroed).
    fn reset(&mut self, sym: u32, session: (i64, i64)) {
        let mut buffers = (
            std::mem::take(&mut self.lp),
            std::mem::take(&mut self.rings),
            std::mem::take(&mut self.s),
            std::mem::take(&mut self.c),
            std::mem::take(&mut self.v),
        );
        for buf in [&mut buffers.0, &mut buffers.1, &mut buffers.2, &mut buffers.3, &mut buffers.4] {
            buf.fill(0.0);
        }
        *self = SymbolState::with_buffers(sym, session, buffers);
    }

    /// A symbol-session's state before its first event, over zeroed buffers (lp, rings, s, c, v).
    fn with_buffers(sym: u32, session: (i64, i64), buffers: Buffers) -> SymbolState {
        let (lp, rings, s, c, v) = buffers;
        SymbolState {
            sym,
            open: session.0,
            close: session.1,
            started: false,
            next_sec: 0,
            idx: 0,
            acc_sec: -1,
            acc: [0.0; N_AGGS],
            price: f64::NAN,
            prev_price: None,
            tick: 0.0,
            bid: None,
            bid_size: 0.0,
            ask: None,
            ask_size: 0.0,
            prev_log_mid: None,
            lp,
            rings,
            s,
            c,
            v,
            queued: false,
        }
    }

    /// The accumulators of second `sec` (reset when the event opens a new second).
    fn touch(&mut self, sec: i64) -> &mut [f64; N_AGGS] {
        if self.acc_sec != sec {
            self.acc_sec = sec;
            self.acc = [0.0; N_AGGS];
        }
        &mut self.acc
    }
}

/// What the featurizer did, as `TickFeaturizer.counts`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub trades: u64,
    pub quotes: u64,
    pub out_of_session: u64,
    pub late: u64,
    pub rejected: u64,
    pub rows: u64,
    /// Events outside the span the session book covers (also counted out of session).
    pub uncovered: u64,
}

/// Feed ordered trades and quotes; take finished rows from [`TickFeaturizer::rows`] / `values`.
pub struct TickFeaturizer {
    pub plan: Plan,
    pub sessions: SessionBook,
    pub sweep: usize,
    ids: HashMap<String, u32>,
    names: Vec<String>,
    /// Per symbol id: the slot of its current state and of its active state (the dict entries).
    current: Vec<Option<usize>>,
    active_slot: Vec<Option<usize>>,
    in_order: Vec<bool>,
    active_order: Vec<u32>,
    slots: Vec<SymbolState>,
    free: Vec<usize>,
    due: VecDeque<usize>,
    target: i64,
    watermark: i64,
    /// Finished rows `(symbol id, ts)`; their values are `values[k * F .. (k + 1) * F]`.
    pub rows: Vec<(u32, i64)>,
    pub values: Vec<f64>,
    pub counts: Counts,
}

/// Everything a [`TickFeaturizer`] has learnt from its input, for a restart checkpoint (the plan
/// and the sessions come from the feature set and the sessions file, as at a first start).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    sweep: usize,
    names: Vec<String>,
    current: Vec<Option<usize>>,
    active_slot: Vec<Option<usize>>,
    in_order: Vec<bool>,
    active_order: Vec<u32>,
    slots: Vec<SymbolState>,
    free: Vec<usize>,
    due: VecDeque<usize>,
    target: i64,
    watermark: i64,
    counts: Counts,
}

#[inline]
fn ceil_sec(t: i64) -> i64 {
    -((-t).div_euclid(NS_PER_S)) * NS_PER_S
}

#[inline]
fn neumaier(s: &mut f64, c: &mut f64, x: f64) {
    let t = *s + x;
    *c += if s.abs() >= x.abs() { (*s - t) + x } else { (x - t) + *s };
    *s = t;
}

impl TickFeaturizer {
    pub fn new(plan: Plan, sessions: SessionBook) -> TickFeaturizer {
        TickFeaturizer {
            plan,
            sessions,
            sweep: 1,
            ids: HashMap::new(),
            names: Vec::new(),
            current: Vec::new(),
            active_slot: Vec::new(),
            in_order: Vec::new(),
            active_order: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            due: VecDeque::new(),
            target: -1,
            watermark: -1,
            rows: Vec::new(),
            values: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// The state after the last event fed, for a restart checkpoint; `None` while finished rows
    /// wait to be taken (publish them first: a checkpoint holds no unpublished row).
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.rows.is_empty() {
            return None;
        }
        Some(Snapshot {
            sweep: self.sweep,
            names: self.names.clone(),
            current: self.current.clone(),
            active_slot: self.active_slot.clone(),
            in_order: self.in_order.clone(),
            active_order: self.active_order.clone(),
            slots: self.slots.clone(),
            free: self.free.clone(),
            due: self.due.clone(),
            target: self.target,
            watermark: self.watermark,
            counts: self.counts,
        })
    }

    /// A featurizer that goes on exactly where `snap` was taken; refused (with the reason) when the
    /// snapshot does not fit `plan` (another feature set version) or is inconsistent.
    pub fn restore(plan: Plan, sessions: SessionBook, snap: Snapshot) -> Result<TickFeaturizer, String> {
        let n = snap.names.len();
        if snap.current.len() != n || snap.active_slot.len() != n || snap.in_order.len() != n {
            return Err(format!("{n} symbols but per-symbol tables of other lengths"));
        }
        let slots = snap.slots.len();
        let in_range = |k: &usize| *k < slots;
        if !(snap.current.iter().flatten().all(in_range)
            && snap.active_slot.iter().flatten().all(in_range)
            && snap.free.iter().all(in_range)
            && snap.due.iter().all(in_range)
            && snap.active_order.iter().all(|&s| (s as usize) < n))
        {
            return Err("a slot or symbol reference is out of range".into());
        }
        let sizes = (plan.lp_len, plan.ring_len * plan.ring_aggs.len(), plan.sums.len());
        if let Some(k) = snap.slots.iter().position(|st| {
            (st.sym as usize) >= n
                || (st.lp.len(), st.rings.len(), st.s.len()) != sizes
                || st.c.len() != sizes.2
                || st.v.len() != sizes.2
        }) {
            return Err(format!("slot {k} does not fit this feature set's plan"));
        }
        let ids = snap.names.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        Ok(TickFeaturizer {
            plan,
            sessions,
            sweep: snap.sweep,
            ids,
            names: snap.names,
            current: snap.current,
            active_slot: snap.active_slot,
            in_order: snap.in_order,
            active_order: snap.active_order,
            slots: snap.slots,
            free: snap.free,
            due: snap.due,
            target: snap.target,
            watermark: snap.watermark,
            rows: Vec::new(),
            values: Vec::new(),
            counts: snap.counts,
        })
    }

    /// The symbol id of `symbol` (interned on first sight).
    pub fn intern(&mut self, symbol: &str) -> u32 {
        if let Some(&id) = self.ids.get(symbol) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(symbol.to_owned(), id);
        self.names.push(symbol.to_owned());
        self.current.push(None);
        self.active_slot.push(None);
        self.in_order.push(false);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn n_features(&self) -> usize {
        self.plan.formulas.len()
    }

    /// Whether any symbol has due seconds waiting to be closed.
    pub fn has_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// Drop the finished rows (after publishing them).
    pub fn clear_rows(&mut self) {
        self.rows.clear();
        self.values.clear();
    }

    fn alloc(&mut self, sym: u32, session: (i64, i64)) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.slots[k].reset(sym, session);
                k
            }
            None => {
                self.slots.push(SymbolState::new(sym, session, &self.plan));
                self.slots.len() - 1
            }
        }
    }

    /// Free a state no dict and no queue refers to any more (a session that ended).
    fn maybe_free(&mut self, k: usize) {
        let st = &self.slots[k];
        let sym = st.sym as usize;
        if !st.queued && self.current[sym] != Some(k) && self.active_slot[sym] != Some(k) {
            self.free.push(k);
        }
    }

    fn set_active(&mut self, sym: u32, k: usize) {
        let old = self.active_slot[sym as usize].replace(k);
        if !self.in_order[sym as usize] {
            self.in_order[sym as usize] = true;
            self.active_order.push(sym);
        }
        if let Some(o) = old.filter(|&o| o != k) {
            self.maybe_free(o);
        }
    }

    /// Advance the clock to `sec`; the slot for an event at `t`, or None to drop it.
    fn state(&mut self, sym: u32, t: i64, sec: i64) -> Option<usize> {
        if sec > self.watermark {
            if self.watermark >= 0 {
                self.target = sec - NS_PER_S;
                self.queue_active();
            }
            self.watermark = sec;
        } else if sec < self.watermark {
            self.counts.late += 1;
            return None;
        }
        if !self.due.is_empty() {
            self.sweep_due();
        }
        let cur = self.current[sym as usize];
        if let Some(k) = cur {
            if self.slots[k].started && self.slots[k].next_sec <= self.target {
                self.close(k);
            }
        }
        let outside = cur.is_none_or(|k| t > self.slots[k].close || t < self.slots[k].open);
        if outside {
            if !self.sessions.covers(t) {
                self.counts.uncovered += 1;
                if self.counts.uncovered == 1 {
                    tracing::error!(t, "event outside the session file's span: pass a sessions file that covers it");
                }
            }
            let Some(session) = self.sessions.find(t) else {
                self.counts.out_of_session += 1;
                return None;
            };
            if cur.is_none_or(|k| session.0 != self.slots[k].open) {
                let k = self.alloc(sym, session);
                self.current[sym as usize] = Some(k);
                if let Some(old) = cur {
                    self.maybe_free(old);
                }
                return Some(k);
            }
        }
        self.current[sym as usize]
    }

    /// Apply one top-of-book update (a side given as None is unchanged; a bad price drops it).
    pub fn on_quote(
        &mut self,
        sym: u32,
        t: i64,
        bid: Option<f64>,
        bid_size: Option<f64>,
        ask: Option<f64>,
        ask_size: Option<f64>,
    ) {
        let bad = |p: Option<f64>| p.is_some_and(|p| !(0.0 < p && p < f64::INFINITY));
        if bad(bid) || bad(ask) {
            self.counts.rejected += 1;
            return;
        }
        let sec = ceil_sec(t);
        let Some(k) = self.state(sym, t, sec) else { return };
        self.counts.quotes += 1;
        let st = &mut self.slots[k];
        if bid.is_some() {
            st.bid = bid;
            st.bid_size = bid_size.unwrap_or(0.0);
        }
        if ask.is_some() {
            st.ask = ask;
            st.ask_size = ask_size.unwrap_or(0.0);
        }
        st.touch(sec)[plan::N_QUOTES] += 1.0;
    }

    /// Apply one trade print (a non-positive or non-finite price, or a negative size, is dropped).
    pub fn on_trade(&mut self, sym: u32, t: i64, price: f64, size: f64) {
        if !(0.0 < price && price < f64::INFINITY && (0.0..f64::INFINITY).contains(&size)) {
            self.counts.rejected += 1;
            return;
        }
        let sec = ceil_sec(t);
        let Some(k) = self.state(sym, t, sec) else { return };
        self.counts.trades += 1;
        let block_size = self.plan.block_size;
        let st = &mut self.slots[k];
        if let Some(prev) = st.prev_price {
            if price != prev {
                st.tick = if price > prev { 1.0 } else { -1.0 };
            }
        }
        st.prev_price = Some(price);
        st.price = price;
        let mut quote = st.tick;
        if let (Some(bid), Some(ask)) = (st.bid, st.ask) {
            if bid <= ask {
                let mid = (bid + ask) / 2.0;
                if price > mid {
                    quote = 1.0;
                } else if price < mid {
                    quote = -1.0;
                }
            }
        }
        let tick = st.tick;
        let acc = st.touch(sec);
        acc[0] += 1.0;
        acc[1] += size;
        acc[2] += tick * size;
        acc[3] += quote * size;
        if size > 0.0 {
            let ls = size.ln();
            acc[4] += 1.0;
            acc[5] += ls;
            acc[6] += ls * ls;
        }
        if size >= block_size {
            acc[7] += size;
        }
        if !st.started {
            st.started = true;
            st.next_sec = sec;
            self.set_active(sym, k);
        }
    }

    fn queue_active(&mut self) {
        let (slots, due) = (&mut self.slots, &mut self.due);
        let (active_slot, in_order) = (&self.active_slot, &mut self.in_order);
        self.active_order.retain(|&sym| {
            let keep = active_slot[sym as usize].is_some();
            in_order[sym as usize] = keep;
            if let Some(k) = active_slot[sym as usize] {
                if !slots[k].queued {
                    slots[k].queued = true;
                    due.push_back(k);
                }
            }
            keep
        });
    }

    /// Close a few due symbols: `sweep` plus 1 per 64 waiting, so a backlog drains geometrically.
    fn sweep_due(&mut self) {
        for _ in 0..self.sweep + (self.due.len() >> 6) {
            let Some(k) = self.due.pop_front() else { return };
            self.slots[k].queued = false;
            self.close(k);
            self.maybe_free(k);
        }
    }

    /// The clock reads `now_ns`: close every second that ended before it, quiet symbols included.
    pub fn advance(&mut self, now_ns: i64) {
        let sec = ceil_sec(now_ns);
        if sec - NS_PER_S > self.target {
            self.target = sec - NS_PER_S;
            self.queue_active();
        }
        self.watermark = self.watermark.max(sec);
        self.drain();
    }

    /// Close every due second of every symbol now.
    pub fn drain(&mut self) {
        while let Some(k) = self.due.pop_front() {
            self.slots[k].queued = false;
            self.close(k);
            self.maybe_free(k);
        }
    }

    /// Close the watermark's second too (the input is over).
    pub fn flush(&mut self) {
        if self.watermark >= 0 {
            self.target = self.watermark;
            self.queue_active();
            self.drain();
        }
    }

    /// Emit slot `k`'s rows up to the due second (capped at its session close).
    fn close(&mut self, k: usize) {
        let end = self.target.min(self.slots[k].close);
        while self.slots[k].next_sec <= end {
            let sec = self.slots[k].next_sec;
            self.row(k, sec);
            self.slots[k].next_sec += NS_PER_S;
        }
        let st = &self.slots[k];
        let sym = st.sym as usize;
        if st.next_sec > st.close && self.active_slot[sym] == Some(k) {
            self.active_slot[sym] = None;
        }
    }

    fn row(&mut self, k: usize, sec: i64) {
        let plan = &self.plan;
        let st = &mut self.slots[k];
        let i = st.idx;
        let mut xs = if st.acc_sec == sec { st.acc } else { [0.0; N_AGGS] };
        let (valid, mid) = match (st.bid, st.ask) {
            (Some(b), Some(a)) if b <= a => (true, (b + a) / 2.0),
            _ => (false, 0.0),
        };
        let log_mid = valid.then(|| mid.ln());
        let r = match (log_mid, st.prev_log_mid) {
            (Some(now), Some(prev)) if i > 0 => now - prev,
            _ => 0.0,
        };
        st.prev_log_mid = log_mid;
        xs[R2] = r * r;
        xs[NZ_R] = if r != 0.0 { 1.0 } else { 0.0 };
        let n = plan.ring_len;
        for (j, &(a, w, ri)) in plan.sums.iter().enumerate() {
            // Neumaier: add the new value, remove the one leaving (the order state.py uses)
            let (mut s, mut c) = (st.s[j], st.c[j]);
            if i >= w {
                let y = -st.rings[ri * n + (i - w) % n];
                if y != 0.0 {
                    neumaier(&mut s, &mut c, y);
                }
            }
            let x = xs[a];
            if x != 0.0 {
                neumaier(&mut s, &mut c, x);
            }
            st.s[j] = s;
            st.c[j] = c;
            st.v[j] = s + c;
        }
        let pos = i % n;
        for (ri, &a) in plan.ring_aggs.iter().enumerate() {
            st.rings[ri * n + pos] = xs[a];
        }
        let ll = plan.lp_len;
        let lp_now = st.price.ln(); // set by the trade that started the rows
        st.lp[i % ll] = lp_now;
        let v = &st.v;
        for f in &plan.formulas {
            let value = match *f {
                Formula::Ret { n } => lp_now - st.lp[(i - if i >= n { n } else { i }) % ll],
                Formula::Ratio { num, den } => {
                    if v[den] > 0.0 {
                        v[num] / v[den]
                    } else {
                        0.0
                    }
                }
                Formula::Mean { s1, n } => {
                    if v[n] > 0.0 {
                        v[s1] / v[n]
                    } else {
                        0.0
                    }
                }
                Formula::Std { s1, s2, n } => plan::std(v[s1], v[s2], v[n], plan.var_snap),
                Formula::Rate { c, w } => v[c] / (if i + 1 < w { i + 1 } else { w }) as f64,
                Formula::LogVolume { vol } => v[vol].ln_1p(),
                Formula::MidRv { r2, nz, w, year } => {
                    if v[nz] > 0.0 {
                        (v[r2] / (if i + 1 < w { i + 1 } else { w }) as f64 * year).sqrt()
                    } else {
                        0.0
                    }
                }
                Formula::Spread => match (valid, st.bid, st.ask) {
                    (true, Some(b), Some(a)) => 1e4 * (a - b) / mid,
                    _ => 0.0,
                },
                Formula::Micro => match (valid, st.bid, st.ask) {
                    (true, Some(b), Some(a)) => {
                        let (bs, az) = (st.bid_size, st.ask_size);
                        let depth = bs + az;
                        if depth > 0.0 {
                            1e4 * ((b * az + a * bs) / depth / mid - 1.0)
                        } else {
                            0.0
                        }
                    }
                    _ => 0.0,
                },
                Formula::Book => {
                    if valid {
                        let depth = st.bid_size + st.ask_size;
                        if depth > 0.0 {
                            (st.bid_size - st.ask_size) / depth
                        } else {
                            0.0
                        }
                    } else {
                        0.0
                    }
                }
                Formula::SinceOpen => (sec - st.open) as f64 / NS_PER_S as f64,
                Formula::ToClose => (st.close - sec) as f64 / NS_PER_S as f64,
            };
            self.values.push(value);
        }
        st.idx += 1;
        self.counts.rows += 1;
        self.rows.push((st.sym, sec));
    }
}

#[cfg(test)]
mod tests {
    use super::super::feature_set::TICK_V2;
    use super::*;

    const OPEN: i64 = 1_767_623_400 * NS_PER_S; // 2026-01-05 14:30 UTC
    const CLOSE: i64 = OPEN + 23_400 * NS_PER_S;

    fn featurizer() -> TickFeaturizer {
        TickFeaturizer::new(Plan::new(&TICK_V2), SessionBook::new(vec![(OPEN, CLOSE)], 0, i64::MAX))
    }

    #[test]
    fn one_row_per_second_even_without_ticks_and_none_before_the_first_trade() {
        let mut f = featurizer();
        let a = f.intern("A:US");
        f.on_quote(a, OPEN + 100_000_000, Some(10.0), Some(100.0), Some(10.02), Some(300.0));
        f.on_trade(a, OPEN + 1_500_000_000, 10.01, 100.0);
        f.on_trade(a, OPEN + 4_200_000_000, 10.02, 200.0);
        f.flush();
        let ts: Vec<i64> = f.rows.iter().map(|r| r.1).collect();
        assert_eq!(ts, (2..=5).map(|s| OPEN + s * NS_PER_S).collect::<Vec<_>>());
        let nf = f.n_features();
        let row = |k: usize| &f.values[k * nf..(k + 1) * nf];
        assert_eq!(row(0)[0], 0.0); // ret_1s of the first row
        assert!((row(3)[0] - (10.02f64.ln() - 10.01f64.ln())).abs() < 1e-15);
        assert_eq!(row(0)[26], 2.0); // secs_since_open
        assert_eq!(row(0)[27], (CLOSE - OPEN) as f64 / 1e9 - 2.0);
        assert!((row(0)[21] - 1e4 * 0.02 / 10.01).abs() < 1e-9); // spread_bps
    }

    #[test]
    fn late_out_of_session_and_bad_events_are_counted_and_dropped() {
        let mut f = featurizer();
        let a = f.intern("A:US");
        f.on_trade(a, OPEN - 5 * NS_PER_S, 10.0, 100.0);
        f.on_trade(a, OPEN + 5 * NS_PER_S, 10.0, 100.0);
        f.on_trade(a, OPEN + 2 * NS_PER_S, 10.0, 100.0);
        f.on_trade(a, OPEN + 6 * NS_PER_S, -1.0, 100.0);
        f.on_quote(a, OPEN + 6 * NS_PER_S, Some(f64::INFINITY), None, None, None);
        let c = f.counts;
        assert_eq!((c.out_of_session, c.late, c.rejected, c.trades), (1, 1, 2, 1));
    }

    #[test]
    fn advance_closes_quiet_symbols_on_the_clock() {
        let mut f = featurizer();
        let (a, b) = (f.intern("A:US"), f.intern("B:US"));
        f.on_trade(a, OPEN + 500_000_000, 10.0, 100.0);
        f.on_trade(b, OPEN + 700_000_000, 20.0, 100.0);
        f.advance(OPEN + 3 * NS_PER_S + 1);
        let mut got: Vec<(u32, i64)> = f.rows.clone();
        got.sort_unstable();
        let want: Vec<(u32, i64)> =
            [a, b].iter().flat_map(|&s| (1..=3).map(move |k| (s, OPEN + k * NS_PER_S))).collect();
        assert_eq!(got, want);
        f.on_trade(a, OPEN + 2 * NS_PER_S, 10.0, 100.0);
        assert_eq!(f.counts.late, 1);
    }

    #[test]
    fn a_new_session_reuses_the_freed_state() {
        let next = OPEN + 86_400 * NS_PER_S;
        let mut f = TickFeaturizer::new(
            Plan::new(&TICK_V2),
            SessionBook::new(vec![(OPEN, CLOSE), (next, next + 23_400 * NS_PER_S)], 0, i64::MAX),
        );
        let a = f.intern("A:US");
        f.on_trade(a, CLOSE - NS_PER_S / 2, 10.0, 100.0);
        f.on_trade(a, next + NS_PER_S / 2, 11.0, 100.0);
        f.flush();
        let ts: Vec<i64> = f.rows.iter().map(|r| r.1).collect();
        assert_eq!(ts, vec![CLOSE, next + NS_PER_S]);
        let nf = f.n_features();
        assert_eq!(f.values[nf], 0.0); // ret_1s restarts with the session (gaps are not bridged)
        assert_eq!(f.free, vec![0]); // the first session's state is free for the next one
    }

    /// Rows and their values as bits, taken out of `f`.
    fn take(f: &mut TickFeaturizer) -> Vec<(String, i64, Vec<u64>)> {
        let nf = f.n_features();
        let out = f
            .rows
            .iter()
            .enumerate()
            .map(|(k, &(s, t))| {
                (f.name(s).to_owned(), t, f.values[k * nf..(k + 1) * nf].iter().map(|v| v.to_bits()).collect())
            })
            .collect();
        f.clear_rows();
        out
    }

    #[test]
    fn a_restored_snapshot_goes_on_bit_for_bit_as_the_uninterrupted_state() {
        // three symbols over 40 minutes of one session, a seeded walk; the break sits mid-second
        let mut x: u64 = 7;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut events = Vec::new();
        let mut price = [10.0, 20.0, 30.0];
        for k in 0..12_000i64 {
            let t = OPEN + k * 200_000_000 + 1;
            let s = (k % 3) as usize;
            price[s] *= 1.0 + (rnd() - 0.5) * 1e-3;
            events.push((s, t, price[s], (1.0 + rnd() * 500.0).round(), k % 4 == 0));
        }
        let feed = |f: &mut TickFeaturizer, e: &[(usize, i64, f64, f64, bool)]| {
            for &(s, t, p, q, quote) in e {
                let id = f.intern(["A:US", "B:US", "C:US"][s]);
                if quote {
                    f.on_quote(id, t, Some(p - 0.01), Some(q), Some(p + 0.01), Some(q));
                } else {
                    f.on_trade(id, t, p, q);
                }
            }
        };
        let mut whole = featurizer();
        feed(&mut whole, &events);
        whole.flush();
        let want = take(&mut whole);

        let (head, tail) = events.split_at(7_001);
        let mut first = featurizer();
        feed(&mut first, head);
        let mut got = take(&mut first);
        let bytes = {
            let mut b = Vec::new();
            ciborium::into_writer(&first.snapshot().expect("rows taken"), &mut b).unwrap();
            b
        };
        let snap: Snapshot = ciborium::from_reader(bytes.as_slice()).unwrap();
        let mut second = TickFeaturizer::restore(Plan::new(&TICK_V2), first.sessions.clone(), snap).unwrap();
        feed(&mut second, tail);
        second.flush();
        got.extend(take(&mut second));
        assert_eq!(got.len(), want.len());
        assert!(got == want, "restored rows differ from the uninterrupted run's");
        assert_eq!(second.counts.trades, whole.counts.trades);
    }

    #[test]
    fn a_snapshot_of_another_plan_or_with_pending_rows_is_refused() {
        let mut f = featurizer();
        let a = f.intern("A:US");
        f.on_trade(a, OPEN + 500_000_000, 10.0, 100.0);
        f.on_trade(a, OPEN + 2_500_000_000, 10.0, 100.0);
        assert!(f.snapshot().is_none(), "a finished row is not yet taken");
        f.clear_rows();
        let mut snap = f.snapshot().unwrap();
        snap.slots[0].rings.pop();
        let err = TickFeaturizer::restore(Plan::new(&TICK_V2), f.sessions.clone(), snap).err().unwrap();
        assert!(err.contains("plan"), "{err}");
    }
}
