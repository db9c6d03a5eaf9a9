//! The figures the benchmarks, the timing tests and the CLI's leak drill report, computed one
//! way: nearest-rank percentiles and medians.

use std::time::Duration;

/// The `p` percentile (`0.0..=1.0`) of `sorted` (ascending): the value at rank `(n - 1) · p`,
/// rounded. NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// The median of `values` (sorted in place): the upper middle of an even count, the same as
/// [`percentile`] at 0.5. NaN when there are none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median of `values` (sorted in place): the upper middle of an even count. Panics when
/// there are none.
pub fn median_duration(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_is_the_percentile_at_one_half() {
        for n in 1..40 {
            let mut v: Vec<f64> = (0..n).rev().map(f64::from).collect();
            let m = median(&mut v);
            assert_eq!(m, percentile(&v, 0.5), "{n}");
            let mut d: Vec<Duration> = (0..n).map(|i| Duration::from_millis(u64::from(i as u32))).collect();
            assert_eq!(median_duration(&mut d).as_secs_f64() * 1e3, m, "{n}");
        }
        assert!(percentile(&[], 0.5).is_nan() && median(&mut []).is_nan());
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
    }
}
