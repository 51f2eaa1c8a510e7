//! Per-symbol ring of the last L feature vectors, preallocated; no allocation per update.

/// The last `l` updates of one symbol, each `f` float32 values.
#[derive(Debug, Clone)]
pub struct Ring {
    l: usize,
    f: usize,
    data: Vec<f32>,
    head: usize, // next row to write
    count: u64,  // updates pushed so far
}

impl Ring {
    pub fn new(l: usize, f: usize) -> Self {
        assert!(l > 0 && f > 0, "ring needs L > 0 and F > 0");
        Ring { l, f, data: vec![0.0; l * f], head: 0, count: 0 }
    }

    pub fn lookback(&self) -> usize {
        self.l
    }

    /// Updates pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the ring holds a full lookback of real updates.
    pub fn warm(&self) -> bool {
        self.count >= self.l as u64
    }

    /// Append one update (`f` values, converted to float32).
    pub fn push(&mut self, values: &[f64]) {
        debug_assert_eq!(values.len(), self.f);
        let row = &mut self.data[self.head * self.f..(self.head + 1) * self.f];
        for (dst, &v) in row.iter_mut().zip(values) {
            *dst = v as f32;
        }
        self.head = (self.head + 1) % self.l;
        self.count += 1;
    }

    /// The newest row.
    pub fn last(&self) -> &[f32] {
        let i = (self.head + self.l - 1) % self.l;
        &self.data[i * self.f..(i + 1) * self.f]
    }

    /// Write the window, oldest first, into `out` (L * F). Until the ring is warm the missing
    /// older steps repeat the oldest update seen.
    pub fn copy_window(&self, out: &mut [f32]) {
        let (l, f) = (self.l, self.f);
        debug_assert_eq!(out.len(), l * f);
        if self.count == 0 {
            out.fill(0.0);
            return;
        }
        let have = (self.count as usize).min(l);
        let missing = l - have;
        let oldest = (self.head + l - have) % l;
        for r in 0..missing {
            out[r * f..(r + 1) * f].copy_from_slice(&self.data[oldest * f..(oldest + 1) * f]);
        }
        let dst = &mut out[missing * f..];
        if oldest + have <= l {
            dst.copy_from_slice(&self.data[oldest * f..(oldest + have) * f]);
        } else {
            let first = l - oldest;
            dst[..first * f].copy_from_slice(&self.data[oldest * f..]);
            dst[first * f..].copy_from_slice(&self.data[..(have - first) * f]);
        }
    }

    /// Change the lookback, keeping the newest rows (used when a new model needs another L).
    pub fn resize(&mut self, new_l: usize) {
        if new_l == self.l {
            return;
        }
        let mut window = vec![0.0; self.l * self.f];
        self.copy_window(&mut window);
        let have = (self.count as usize).min(self.l).min(new_l);
        let mut data = vec![0.0; new_l * self.f];
        data[..have * self.f].copy_from_slice(&window[(self.l - have) * self.f..]);
        self.data = data;
        self.l = new_l;
        self.head = have % new_l;
        self.count = have as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(r: &Ring) -> Vec<f32> {
        let mut out = vec![0.0; r.lookback() * 2];
        r.copy_window(&mut out);
        out
    }

    #[test]
    fn window_is_oldest_first_after_wrap() {
        let mut r = Ring::new(3, 2);
        for i in 0..5 {
            r.push(&[i as f64, 10.0 + i as f64]);
        }
        assert_eq!(window(&r), vec![2.0, 12.0, 3.0, 13.0, 4.0, 14.0]);
        assert_eq!(r.last(), &[4.0, 14.0]);
        assert!(r.warm());
    }

    #[test]
    fn cold_ring_pads_with_oldest_update() {
        let mut r = Ring::new(4, 2);
        r.push(&[1.0, 2.0]);
        r.push(&[3.0, 4.0]);
        assert!(!r.warm());
        assert_eq!(window(&r), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn resize_keeps_newest_rows() {
        let mut r = Ring::new(3, 2);
        for i in 0..4 {
            r.push(&[i as f64, 0.0]);
        }
        r.resize(2);
        assert_eq!(window(&r), vec![2.0, 0.0, 3.0, 0.0]);
        r.resize(4);
        assert!(!r.warm());
        assert_eq!(window(&r), vec![2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
        r.push(&[4.0, 0.0]);
        assert_eq!(r.last(), &[4.0, 0.0]);
    }
}
