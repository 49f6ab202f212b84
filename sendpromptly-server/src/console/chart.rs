//! The overview chart: server-rendered SVG of events, failures and
//! incidents per day, overall and per event type. No JavaScript; every
//! chart has a text alternative and the numbers are also in a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::store::DailyActivity;

/// How many days the overview shows.
pub const DAYS: usize = 30;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    failures: u64,
    incidents: u64,
}

/// One event type's row in the overview's table.
pub struct TypeRow {
    pub event_type: String,
    pub events: u64,
    pub failures: u64,
    pub incidents: u64,
    /// Failures per event, e.g. `12%`, or `—` without events.
    pub failure_rate: String,
    /// Whether this type had failures or incidents (highlighted).
    pub breaking: bool,
    /// A small SVG of its days (safe markup built here).
    pub sparkline: String,
    /// p95 time to effect over the 30 days (filled in by the page), `—` without successes.
    pub p95_time_to_effect: String,
}

/// The chart data of the overview.
pub struct Overview {
    /// The main SVG (safe markup built here).
    pub svg: String,
    /// A one-sentence summary, the chart's text alternative.
    pub summary: String,
    /// Per event type, the most failures and incidents first.
    pub types: Vec<TypeRow>,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Builds the overview's charts for the [`DAYS`] days ending with `today`.
pub fn overview(activity: &[DailyActivity], today: NaiveDate) -> Overview {
    let first = today - chrono::Duration::days(DAYS as i64 - 1);
    let days: Vec<NaiveDate> = (0..DAYS)
        .map(|i| first + chrono::Duration::days(i as i64))
        .collect();
    let index = |day: NaiveDate| -> Option<usize> {
        usize::try_from((day - first).num_days())
            .ok()
            .filter(|i| *i < DAYS)
    };
    let mut total = vec![Counts::default(); DAYS];
    let mut by_type: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    for row in activity {
        let Some(i) = index(row.day) else { continue };
        let name = row
            .event_type
            .clone()
            .unwrap_or_else(|| "(no receipt yet)".to_owned());
        let series = by_type
            .entry(name)
            .or_insert_with(|| vec![Counts::default(); DAYS]);
        for counts in [&mut total[i], &mut series[i]] {
            counts.events += row.events;
            counts.failures += row.failures;
            counts.incidents += row.incidents;
        }
    }
    let sum = |series: &[Counts]| {
        series.iter().fold(Counts::default(), |a, c| Counts {
            events: a.events + c.events,
            failures: a.failures + c.failures,
            incidents: a.incidents + c.incidents,
        })
    };
    let all = sum(&total);
    let mut types: Vec<TypeRow> = by_type
        .iter()
        .map(|(name, series)| {
            let s = sum(series);
            TypeRow {
                event_type: name.clone(),
                events: s.events,
                failures: s.failures,
                incidents: s.incidents,
                failure_rate: if s.events == 0 {
                    "—".to_owned()
                } else {
                    format!("{:.0}%", 100.0 * s.failures as f64 / s.events as f64)
                },
                breaking: s.failures > 0 || s.incidents > 0,
                sparkline: sparkline(name, series),
                p95_time_to_effect: "—".to_owned(),
            }
        })
        .collect();
    types.sort_by(|a, b| {
        (b.incidents + b.failures, b.events, &a.event_type).cmp(&(
            a.incidents + a.failures,
            a.events,
            &b.event_type,
        ))
    });
    let worst = types
        .iter()
        .find(|t| t.breaking)
        .map(|t| {
            format!(
                " Most trouble: {} ({} failures, {} incidents).",
                t.event_type, t.failures, t.incidents
            )
        })
        .unwrap_or_default();
    let summary = format!(
        "Last {DAYS} days: {} events, {} failures, {} incidents opened.{worst}",
        all.events, all.failures, all.incidents
    );
    Overview {
        svg: main_chart(&days, &total, &summary),
        summary,
        types,
    }
}

/// A "nice" axis maximum at or above `max`.
fn nice_max(max: u64) -> u64 {
    let max = max.max(4);
    let magnitude = 10_u64.pow(max.ilog10());
    for step in [1, 2, 5, 10] {
        let candidate = step * magnitude;
        if candidate >= max {
            return candidate;
        }
    }
    10 * magnitude
}

fn main_chart(days: &[NaiveDate], total: &[Counts], summary: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 40.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 28.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = nice_max(
        total
            .iter()
            .map(|c| c.events.max(c.failures).max(c.incidents))
            .max()
            .unwrap_or(0),
    );
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / max as f64;
    let slot = plot_w / days.len() as f64;
    let bar = (slot * 0.28).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet"><title id="chart-title">Events, failures and incidents per day</title><desc id="chart-desc">{}</desc>"#,
        escape(summary)
    );
    for step in 0..=4 {
        let v = max * step / 4;
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e7ee"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{v}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (i, (day, c)) in days.iter().zip(total).enumerate() {
        let x0 = LEFT + slot * i as f64 + (slot - 3.0 * bar) / 2.0;
        let label = format!(
            "{}: {} events, {} failures, {} incidents",
            day.format("%b %-d"),
            c.events,
            c.failures,
            c.incidents
        );
        let _ = write!(svg, "<g><title>{}</title>", escape(&label));
        for (k, (value, class)) in [
            (c.events, "s-events"),
            (c.failures, "s-failures"),
            (c.incidents, "s-incidents"),
        ]
        .into_iter()
        .enumerate()
        {
            if value > 0 {
                let top = y(value);
                let _ = write!(
                    svg,
                    r#"<rect class="{class}" x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" rx="1"/>"#,
                    x0 + bar * k as f64,
                    (TOP + plot_h - top).max(1.0)
                );
            }
        }
        svg.push_str("</g>");
        if (i % 7 == 0 && i + 4 < days.len()) || i == days.len() - 1 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle" class="axis">{}</text>"#,
                LEFT + slot * (i as f64 + 0.5),
                H - 8.0,
                day.format("%b %-d")
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn sparkline(name: &str, series: &[Counts]) -> String {
    const W: f64 = 150.0;
    const H: f64 = 28.0;
    let max = series
        .iter()
        .map(|c| c.events.max(c.failures))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = W / series.len() as f64;
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{} per day: grey events, red failures">"#,
        escape(name)
    );
    for (i, c) in series.iter().enumerate() {
        for (value, class, shrink) in [
            (c.events, "s-events", 0.15),
            (c.failures, "s-failures", 0.3),
        ] {
            if value > 0 {
                let h = (H - 2.0) * value as f64 / max as f64;
                let _ = write!(
                    svg,
                    r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
                    slot * i as f64 + slot * shrink,
                    H - h,
                    (slot * (1.0 - 2.0 * shrink)).max(0.5),
                    h.max(1.0)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaking_type_comes_first_and_labels_are_escaped() {
        let today = NaiveDate::from_ymd_opt(2027, 1, 30).unwrap();
        let row = |days_ago: i64, t: &str, e, f, i| DailyActivity {
            day: today - chrono::Duration::days(days_ago),
            event_type: Some(t.to_owned()),
            events: e,
            failures: f,
            incidents: i,
        };
        let chart = overview(
            &[
                row(0, "checkout.session.completed", 40, 0, 0),
                row(1, "invoice.<paid>", 10, 3, 2),
                row(40, "old.type", 5, 5, 5),
            ],
            today,
        );
        assert_eq!(chart.types[0].event_type, "invoice.<paid>");
        assert_eq!(chart.types[0].failure_rate, "30%");
        assert!(chart.types[0].breaking);
        assert_eq!(chart.types.len(), 2, "older than 30 days is left out");
        assert!(chart.types[0].sparkline.contains("invoice.&lt;paid&gt;"));
        assert!(!chart.svg.contains("<paid>"));
        assert!(chart.summary.contains("50 events, 3 failures, 2 incidents"));
        assert_eq!(nice_max(0), 5);
        assert_eq!(nice_max(37), 50);
        assert_eq!(nice_max(100), 100);
    }
}
