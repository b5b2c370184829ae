//! The small statistics the report's figures share.

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// p50 and p90 of `values` (sorted here).
pub fn p50_p90(mut values: Vec<f64>) -> (Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    (percentile(&values, 50.0), percentile(&values, 90.0))
}

/// `part / whole`, None when there is no whole.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Nanoseconds to seconds.
pub fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_a_hand_list() {
        let v = vec![5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0, 6.0, 9.0, 8.0];
        assert_eq!(p50_p90(v), (Some(5.0), Some(9.0)));
        assert_eq!(p50_p90(vec![]), (None, None));
        assert_eq!(p50_p90(vec![42.0]), (Some(42.0), Some(42.0)));
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(1, 0), None);
    }
}
