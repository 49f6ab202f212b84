//! The Prometheus histograms of issue #25:
//! `sendpromptly_time_to_effect_seconds{event_type}` (observed when a
//! success result is applied) and
//! `sendpromptly_http_request_duration_seconds{route}` (the matched route
//! template, so the label set stays small).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the time-to-effect buckets, in seconds.
const TTE_BOUNDS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Upper bounds of the request-duration buckets, in seconds.
const HTTP_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// At most this many event types get a series of their own; the rest
/// are counted as `other` (event types come from the apps).
const MAX_EVENT_TYPES: usize = 200;

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, bound) in bounds.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

/// The two histograms, per label value.
#[derive(Debug, Default)]
pub struct Histograms {
    tte: Mutex<BTreeMap<String, Histogram>>,
    http: Mutex<BTreeMap<String, Histogram>>,
}

impl Histograms {
    /// Observes a time to effect (receipt → success) of `event_type`.
    pub fn time_to_effect(&self, event_type: &str, seconds: f64) {
        if let Ok(mut map) = self.tte.lock() {
            let label = if map.contains_key(event_type) || map.len() < MAX_EVENT_TYPES {
                event_type
            } else {
                "other"
            };
            map.entry(label.to_owned())
                .or_default()
                .observe(&TTE_BOUNDS, seconds.max(0.0));
        }
    }

    /// Observes an HTTP request's duration on `route` (a route template).
    pub fn http_request(&self, route: &str, seconds: f64) {
        if let Ok(mut map) = self.http.lock() {
            map.entry(route.to_owned())
                .or_default()
                .observe(&HTTP_BOUNDS, seconds);
        }
    }

    /// The Prometheus text of both.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut one = |name: &str,
                       help: &str,
                       label: &str,
                       bounds: &[f64],
                       map: &Mutex<BTreeMap<String, Histogram>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let Ok(map) = map.lock() else { return };
            for (value, h) in map.iter() {
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                for (i, bound) in bounds.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {}",
                        h.counts.get(i).copied().unwrap_or(0)
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", h.count);
            }
        };
        one(
            "sendpromptly_time_to_effect_seconds",
            "Receipt to success, observed when a success result is applied.",
            "event_type",
            &TTE_BOUNDS,
            &self.tte,
        );
        one(
            "sendpromptly_http_request_duration_seconds",
            "HTTP request duration by matched route template.",
            "route",
            &HTTP_BOUNDS,
            &self.http,
        );
        out
    }
}
