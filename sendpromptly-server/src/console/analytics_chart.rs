//! The Analytics page's charts (issue #25): server-rendered SVG, no
//! JavaScript; the numbers are also in the page's tables.

use std::fmt::Write as _;

use sendpromptly_core::wire::{DailyStats, SloStatus};

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 28.0;
const PAD_T: f64 = 12.0;

/// A human duration for axis labels and tables: `850 ms`, `12.3 s`, `4.5 min`, `1.2 h`.
pub fn duration_label(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}

/// The p50 and p95 time-to-effect lines per day. Days without successes
/// leave a gap.
pub fn time_to_effect_svg(days: &[DailyStats]) -> String {
    let max = days
        .iter()
        .filter_map(|d| d.time_to_effect.p95_ms)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let n = days.len().max(2) as f64;
    let x = |i: usize| PAD_L + (W - PAD_L - 8.0) * i as f64 / (n - 1.0);
    let y = |v: f64| PAD_T + (H - PAD_T - PAD_B) * (1.0 - v / max);
    let mut svg = format!(
        "<svg class=\"chart analytics-chart\" id=\"tte-chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"Time to effect per day, p50 and p95\">"
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{PAD_L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - 8.0,
            PAD_L - 6.0,
            y(v) + 4.0,
            duration_label(v),
            y = y(v)
        );
    }
    for (series, pick) in [
        (
            "p50",
            (|d: &DailyStats| d.time_to_effect.p50_ms) as fn(&DailyStats) -> Option<f64>,
        ),
        ("p95", |d: &DailyStats| d.time_to_effect.p95_ms),
    ] {
        let mut path = String::new();
        let mut pen_up = true;
        for (i, day) in days.iter().enumerate() {
            match pick(day) {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_up { "M" } else { "L" },
                        x(i),
                        y(v)
                    );
                    let _ = write!(
                        svg,
                        "<circle class=\"s-{series}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" data-day=\"{}\" data-ms=\"{v}\"><title>{} {series}: {}</title></circle>",
                        x(i),
                        y(v),
                        day.day,
                        day.day,
                        duration_label(v)
                    );
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = write!(
            svg,
            "<path class=\"line s-{series}\" data-series=\"{series}\" d=\"{}\"/>",
            path.trim_end()
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{PAD_L}\" y=\"{}\">{}</text>\
             <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            H - 8.0,
            first.day,
            W - 8.0,
            H - 8.0,
            last.day
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One SLO's attainment against its objective and the error budget left,
/// as two horizontal bars.
pub fn slo_svg(slo: &SloStatus) -> String {
    let attained = slo.attainment_percent.unwrap_or(0.0).clamp(0.0, 100.0);
    let budget = slo
        .error_budget_left_percent
        .unwrap_or(0.0)
        .clamp(0.0, 100.0);
    let objective = slo.objective.objective_percent;
    let bar = 260.0;
    format!(
        "<svg class=\"chart slo-chart\" viewBox=\"0 0 300 64\" role=\"img\" aria-label=\"Attainment {attained:.2}% of objective {objective}%, error budget left {budget:.1}%\">\
         <rect class=\"track\" x=\"0\" y=\"6\" width=\"{bar}\" height=\"16\"/>\
         <rect class=\"s-attainment{}\" x=\"0\" y=\"6\" width=\"{:.1}\" height=\"16\" data-percent=\"{attained}\"/>\
         <line class=\"objective\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"2\" y2=\"26\"/>\
         <rect class=\"track\" x=\"0\" y=\"40\" width=\"{bar}\" height=\"16\"/>\
         <rect class=\"s-budget\" x=\"0\" y=\"40\" width=\"{:.1}\" height=\"16\" data-percent=\"{budget}\"/>\
         </svg>",
        if slo.burning { " burning" } else { "" },
        bar * attained / 100.0,
        bar * objective / 100.0,
        bar * objective / 100.0,
        bar * budget / 100.0,
    )
}
