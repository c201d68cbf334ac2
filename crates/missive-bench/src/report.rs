//! Latency histograms and the two outputs of every scenario: a short human
//! table and one JSON line.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Highest latency a histogram records (60 s, in nanoseconds); longer ones are clamped.
const MAX_NANOS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub struct Latencies(Histogram<u64>);

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Latencies {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, 3 digits).
        match Histogram::new_with_bounds(1, MAX_NANOS, 3) {
            Ok(histogram) => Latencies(histogram),
            Err(_) => unreachable!("constant histogram bounds are valid"),
        }
    }

    /// Records one latency.
    pub fn record_nanos(&mut self, nanos: u64) {
        self.0.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn millis_at(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1e6
    }

    /// The percentiles, in milliseconds.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            p50: self.millis_at(0.5),
            p99: self.millis_at(0.99),
            p999: self.millis_at(0.999),
            max: self.0.max() as f64 / 1e6,
            mean: self.0.mean() / 1e6,
        }
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// The JSON object `{"p50_ms",…}`.
    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_ms": round3(self.p50),
            "p99_ms": round3(self.p99),
            "p999_ms": round3(self.p999),
            "max_ms": round3(self.max),
            "mean_ms": round3(self.mean),
        })
    }

    /// `p50 0.412 / p99 1.203 / p99.9 2.900 / max 4.1 ms`.
    pub fn text(&self) -> String {
        format!(
            "p50 {:.3} / p99 {:.3} / p99.9 {:.3} / max {:.3} ms",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

/// Rounds to 3 decimals, for readable JSON.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Prints a titled two-column table of `rows`, then `record` as one JSON line.
pub fn emit(title: &str, rows: &[(&str, String)], record: &Value) {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    println!("{title}");
    println!("{}", "-".repeat(title.len()));
    for (name, value) in rows {
        println!("  {name:<width$}  {value}");
    }
    println!("{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut latencies = Latencies::new();
        for micros in 1..=1000u64 {
            latencies.record_nanos(micros * 1000);
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        assert!((summary.p50 - 0.5).abs() < 0.01, "{summary:?}");
        assert!((summary.p99 - 0.99).abs() < 0.01, "{summary:?}");
        assert!((summary.max - 1.0).abs() < 0.01, "{summary:?}");
    }

    #[test]
    fn merging_adds_the_counts() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record_nanos(1_000);
        b.record_nanos(2_000);
        b.record_nanos(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 3);
    }
}
