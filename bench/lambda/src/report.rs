//! Numbers as the benchmark tables show them.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 to 100) of `samples`; zero for none.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// `MET` or `MISSED`.
pub fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_samples_then_percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = [5u64, 1, 4, 2, 3]
            .iter()
            .map(|&m| Duration::from_millis(m))
            .collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(3));
        assert_eq!(percentile(&samples, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(5));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(mib(40 * 1024 * 1024), "40.0");
        assert_eq!(ms(Duration::from_micros(1_250)), "1.2");
    }
}
