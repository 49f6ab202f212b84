//! Time-to-effect analytics and the fulfilment SLO: the pure rules (issue
//! #25). The store keeps log-bucket histograms of durations (see
//! `docs/analytics.md`); these functions turn buckets into percentiles and
//! slot counts into SLO attainment and burn-rate decisions.

use crate::validation::ValidationError;

/// Values below this many milliseconds have a bucket each (exact).
const EXACT_BELOW: i64 = 256;
/// Buckets per doubling above [`EXACT_BELOW`].
const SUB_BUCKETS: i64 = 128;

/// The bucket of a duration in milliseconds (negative durations count as
/// 0): exact below 256 ms, then 128 buckets per doubling. The same rule as
/// the store's triggers (`migrations/*/0012_analytics.sql`).
pub fn bucket_of(millis: i64) -> i64 {
    let v = millis.max(0);
    if v < EXACT_BELOW {
        return v;
    }
    // e = number of k >= 1 with v >= 128 * 2^k.
    let e = i64::from(63 - v.leading_zeros()) - 7;
    e * SUB_BUCKETS + (v >> e)
}

/// The smallest and largest millisecond value a bucket holds.
pub fn bucket_range(bucket: i64) -> (i64, i64) {
    if bucket < EXACT_BELOW {
        return (bucket, bucket);
    }
    let e = bucket / SUB_BUCKETS - 1;
    let mantissa = bucket - e * SUB_BUCKETS;
    let low = mantissa << e;
    (low, low + (1 << e) - 1)
}

/// The value reported for a bucket: its midpoint, within 0.4 % of any
/// value in it.
pub fn bucket_value(bucket: i64) -> f64 {
    let (low, high) = bucket_range(bucket);
    (low as f64 + high as f64) / 2.0
}

/// The nearest-rank `q`-quantile (0 < q ≤ 1) of a histogram given as
/// `(bucket, count)` pairs in any order: the value of the bucket holding
/// the ⌈q·n⌉-th smallest value. `None` when empty.
pub fn percentile(histogram: &[(i64, u64)], q: f64) -> Option<f64> {
    let total: u64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let mut sorted = histogram.to_vec();
    sorted.sort_unstable();
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (bucket, n) in sorted {
        seen += n;
        if seen >= rank {
            return Some(bucket_value(bucket));
        }
    }
    None
}

/// Share of due events that succeeded within the threshold; `None` when no
/// event is due.
pub fn attainment(due: u64, good: u64) -> Option<f64> {
    (due > 0).then(|| good.min(due) as f64 / due as f64)
}

/// The error budget left over a window, as a share of the budget
/// (1 = untouched, 0 = spent, negative = overspent):
/// `1 - bad / (due × (1 - objective))`.
pub fn budget_left(due: u64, good: u64, objective: f64) -> Option<f64> {
    let allowed = due as f64 * (1.0 - objective);
    (due > 0 && allowed > 0.0).then(|| 1.0 - (due - good.min(due)) as f64 / allowed)
}

/// How fast the budget burns over a window: the bad share divided by the
/// allowed share (1 = spends exactly the budget over the SLO window).
/// 0 when nothing is due.
pub fn burn_rate(due: u64, good: u64, objective: f64) -> f64 {
    let allowed = 1.0 - objective;
    if due == 0 || allowed <= 0.0 {
        return 0.0;
    }
    (due - good.min(due)) as f64 / due as f64 / allowed
}

/// One multi-window burn-rate rule (Google SRE workbook, chapter 5): the
/// alert fires when both the long and the short window burn at least
/// `factor` times the sustainable rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnRule {
    /// The long window, in minutes.
    pub long_minutes: i64,
    /// The short window, in minutes.
    pub short_minutes: i64,
    /// The burn-rate factor.
    pub factor: f64,
}

/// The rules `slo.burning` uses: 14.4× over 1 h and 5 m (2 % of a 30-day
/// budget in an hour), 6× over 6 h and 30 m (5 % in six hours).
pub const BURN_RULES: [BurnRule; 2] = [
    BurnRule {
        long_minutes: 60,
        short_minutes: 5,
        factor: 14.4,
    },
    BurnRule {
        long_minutes: 360,
        short_minutes: 30,
        factor: 6.0,
    },
];

/// Whether any rule fires, given each window's `(due, good)` counts by
/// its length in minutes (`counts(minutes)`).
pub fn burning(objective: f64, counts: impl Fn(i64) -> (u64, u64)) -> bool {
    BURN_RULES.iter().any(|rule| {
        let (due_long, good_long) = counts(rule.long_minutes);
        let (due_short, good_short) = counts(rule.short_minutes);
        burn_rate(due_long, good_long, objective) >= rule.factor
            && burn_rate(due_short, good_short, objective) >= rule.factor
    })
}

/// Checks a list of SLOs: one per event type, objective strictly between
/// 0 and 100 %, threshold 1 s – 7 days, window 1 – 90 days.
pub fn validate_slos(slos: &[crate::wire::SloObjective]) -> Result<(), ValidationError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, slo) in slos.iter().enumerate() {
        let param = |field: &str| format!("slos[{i}].{field}");
        if slo.event_type.trim().is_empty() || slo.event_type.len() > 255 {
            return Err(ValidationError::new(
                param("event_type"),
                "give the event type the SLO is for (1-255 characters)",
            ));
        }
        if !seen.insert(slo.event_type.as_str()) {
            return Err(ValidationError::new(
                param("event_type"),
                format!("`{}` has two SLOs; keep one per event type", slo.event_type),
            ));
        }
        if !(slo.objective_percent > 0.0 && slo.objective_percent < 100.0) {
            return Err(ValidationError::new(
                param("objective_percent"),
                "must be more than 0 and less than 100, e.g. 99.5",
            ));
        }
        if !(1..=604_800).contains(&slo.threshold_seconds) {
            return Err(ValidationError::new(
                param("threshold_seconds"),
                "must be 1 to 604800 seconds, e.g. 300",
            ));
        }
        if !(1..=90).contains(&slo.window_days) {
            return Err(ValidationError::new(
                param("window_days"),
                "must be 1 to 90 days (default 30)",
            ));
        }
    }
    Ok(())
}

/// The SLOs as the console's settings form shows them: one per line,
/// `event_type objective% threshold_seconds [window_days]`, e.g.
/// `invoice.paid 99.5 300 30`.
pub fn slo_lines(slos: &[crate::wire::SloObjective]) -> String {
    slos.iter()
        .map(|slo| {
            format!(
                "{} {} {} {}\n",
                slo.event_type, slo.objective_percent, slo.threshold_seconds, slo.window_days
            )
        })
        .collect()
}

/// Reads [`slo_lines`]' format (a `%` after the objective and `s`/`d`
/// after the numbers are allowed; blank lines and `#` comments skipped),
/// then [`validate_slos`]. An error names the line and what to write.
pub fn parse_slo_lines(text: &str) -> Result<Vec<crate::wire::SloObjective>, ValidationError> {
    const EXAMPLE: &str = "write `event_type objective threshold_seconds [window_days]`, e.g. `invoice.paid 99.5 300 30`";
    let mut slos = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad =
            |what: &str| ValidationError::new("slos", format!("line {}: {what}; {EXAMPLE}", i + 1));
        let words: Vec<&str> = line.split_whitespace().collect();
        if !(3..=4).contains(&words.len()) {
            return Err(bad(&format!("`{line}` has {} words", words.len())));
        }
        let objective_percent: f64 = words[1]
            .trim_end_matches('%')
            .parse()
            .map_err(|_| bad(&format!("objective `{}` is not a number", words[1])))?;
        let threshold_seconds: u32 = words[2]
            .trim_end_matches('s')
            .parse()
            .map_err(|_| bad(&format!("threshold `{}` is not whole seconds", words[2])))?;
        let window_days: u32 = match words.get(3) {
            Some(word) => word
                .trim_end_matches('d')
                .parse()
                .map_err(|_| bad(&format!("window `{word}` is not whole days")))?,
            None => 30,
        };
        slos.push(crate::wire::SloObjective {
            event_type: words[0].to_owned(),
            objective_percent,
            threshold_seconds,
            window_days,
        });
    }
    validate_slos(&slos)?;
    Ok(slos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_lines_round_trip_and_errors_name_the_line() {
        let text = "# ours\ninvoice.paid 99.5% 300s 30d\n\ncheckout.session.completed 99 60\n";
        let slos = parse_slo_lines(text).unwrap();
        assert_eq!(slos.len(), 2);
        assert_eq!(slos[0].objective_percent, 99.5);
        assert_eq!(slos[1].window_days, 30);
        assert_eq!(parse_slo_lines(&slo_lines(&slos)).unwrap(), slos);
        let err = parse_slo_lines("invoice.paid 99.5 300\ninvoice.paid ninety 300").unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert!(err.message.contains("ninety"), "{}", err.message);
        let err = parse_slo_lines("invoice.paid 100 300").unwrap_err();
        assert_eq!(err.param, "slos[0].objective_percent");
        assert!(parse_slo_lines("").unwrap().is_empty());
    }

    #[test]
    fn buckets_are_monotonic_and_hold_their_values() {
        let mut last = -1;
        for v in (0..5000).chain([65_535, 65_536, 1 << 33, (1 << 33) + 12345]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            let (low, high) = bucket_range(b);
            assert!(low <= v && v <= high, "{v} outside {low}..={high}");
            assert!((bucket_value(b) - v as f64).abs() <= v as f64 / 256.0 + 0.5);
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let h: Vec<(i64, u64)> = (1..=100).map(|v| (bucket_of(v), 1)).collect();
        assert_eq!(percentile(&h, 0.5), Some(50.0));
        assert_eq!(percentile(&h, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
