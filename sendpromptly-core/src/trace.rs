//! W3C Trace Context (`traceparent`, `tracestate`): the strict parser the
//! server validates signals with, and the child context a repair callback
//! continues the incident's trace with. Pure: the caller brings the random
//! span id.
//!
//! <https://www.w3.org/TR/trace-context/>

use serde::{Deserialize, Serialize};
use std::fmt;

/// The format a `traceparent` must have, for error messages.
pub const TRACEPARENT_FORMAT: &str = "00-<32 lowercase hex trace id, not all zero>-<16 lowercase hex parent span id, not all zero>-<2 lowercase hex flags>, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The longest `tracestate` kept (the W3C limit a vendor must propagate).
pub const MAX_TRACESTATE_CHARS: usize = 512;
/// The most list members a `tracestate` may have.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A parsed `traceparent`: which trace, which span is the parent, the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The parent span id (8 bytes, not all zero).
    pub span_id: [u8; 8],
    /// The trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

/// Why a `traceparent` or `tracestate` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// Not the `version-trace_id-parent_id-flags` shape.
    #[error("must be {TRACEPARENT_FORMAT}")]
    Shape,
    /// Version `ff`, which the specification forbids.
    #[error("version ff is forbidden; use version 00 ({TRACEPARENT_FORMAT})")]
    ForbiddenVersion,
    /// A trace id of 32 zeros.
    #[error("the trace id must not be all zeros ({TRACEPARENT_FORMAT})")]
    ZeroTraceId,
    /// A span id of 16 zeros.
    #[error("the parent span id must not be all zeros ({TRACEPARENT_FORMAT})")]
    ZeroSpanId,
    /// A `tracestate` that breaks the list rules.
    #[error(
        "must be a W3C tracestate: at most {MAX_TRACESTATE_MEMBERS} comma-separated key=value members, at most {MAX_TRACESTATE_CHARS} characters, printable ASCII ({0})"
    )]
    TraceState(&'static str),
}

/// Whether `s` is all lowercase hex digits.
fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl TraceParent {
    /// Parses a `traceparent` strictly: version `00` is exactly 55
    /// characters; a later version (not `ff`) may carry more after a `-`,
    /// which is dropped; every hex digit lowercase; neither id all zeros.
    pub fn parse(value: &str) -> Result<TraceParent, TraceError> {
        let bytes = value.as_bytes();
        if bytes.len() < 55 || !value.is_ascii() {
            return Err(TraceError::Shape);
        }
        let version = &value[0..2];
        if !lower_hex(version) {
            return Err(TraceError::Shape);
        }
        if version == "ff" {
            return Err(TraceError::ForbiddenVersion);
        }
        if (version == "00" && bytes.len() != 55) || (bytes.len() > 55 && bytes[55] != b'-') {
            return Err(TraceError::Shape);
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(TraceError::Shape);
        }
        let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..55]);
        if !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
            return Err(TraceError::Shape);
        }
        let trace_id: [u8; 16] = decode(trace).ok_or(TraceError::Shape)?;
        let span_id: [u8; 8] = decode(span).ok_or(TraceError::Shape)?;
        let [flags] = decode::<1>(flags).ok_or(TraceError::Shape)?;
        if trace_id == [0; 16] {
            return Err(TraceError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceError::ZeroSpanId);
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            // Only version 00's flags are known; a later version's are kept as sent.
            flags,
        })
    }

    /// Whether the caller sampled this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }

    /// The context of a new span under this one: the same trace and flags,
    /// `span_id` as the new span (an all-zero id is bumped to 1, never sent).
    pub fn child(&self, span_id: [u8; 8]) -> TraceParent {
        let span_id = if span_id == [0; 8] {
            [0, 0, 0, 0, 0, 0, 0, 1]
        } else {
            span_id
        };
        TraceParent {
            trace_id: self.trace_id,
            span_id,
            flags: self.flags,
        }
    }
}

impl fmt::Display for TraceParent {
    /// The version-00 header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }
}

/// Checks a `tracestate` against the W3C list rules (keys `[a-z0-9]` then
/// `[a-z0-9_-*/]`, with one optional `@` for a multi-tenant key; values of
/// printable ASCII without `,` and `=`, not ending in a space).
pub fn validate_tracestate(value: &str) -> Result<(), TraceError> {
    if value.len() > MAX_TRACESTATE_CHARS {
        return Err(TraceError::TraceState("too long"));
    }
    let members: Vec<&str> = value
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.len() > MAX_TRACESTATE_MEMBERS {
        return Err(TraceError::TraceState("too many members"));
    }
    for member in members {
        let (key, val) = member
            .split_once('=')
            .ok_or(TraceError::TraceState("a member without `=`"))?;
        let key_ok = |k: &str, first_digit: bool, max: usize| {
            let mut chars = k.bytes();
            let first_ok = chars
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || (first_digit && b.is_ascii_digit()));
            first_ok
                && k.len() <= max
                && chars
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b))
        };
        let valid_key = match key.split_once('@') {
            None => key_ok(key, true, 256),
            Some((tenant, system)) => key_ok(tenant, true, 241) && key_ok(system, false, 14),
        };
        if !valid_key {
            return Err(TraceError::TraceState("a malformed key"));
        }
        let valid_value = !val.is_empty()
            && val.len() <= 256
            && !val.ends_with(' ')
            && val
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
        if !valid_value {
            return Err(TraceError::TraceState("a malformed value"));
        }
    }
    Ok(())
}

/// A signal's trace context as stored on its timeline entry (`detail.trace`)
/// and shown by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraceContextView {
    /// The `traceparent` as received.
    pub traceparent: String,
    /// Its trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Its parent span id (the caller's span), 16 lowercase hex digits.
    pub span_id: String,
    /// Whether the caller sampled the trace.
    pub sampled: bool,
    /// The `tracestate` as received, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// On a repair callback's entry: the span the callback was sent under
    /// (its parent is the failing signal's span, `parent_span_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

impl TraceContextView {
    /// The view of a parsed `traceparent` and its `tracestate`.
    pub fn new(parent: &TraceParent, tracestate: Option<&str>) -> Self {
        TraceContextView {
            traceparent: parent.to_string(),
            trace_id: parent.trace_id_hex(),
            span_id: parent.span_id_hex(),
            sampled: parent.sampled(),
            tracestate: tracestate.map(str::to_owned),
            parent_span_id: None,
        }
    }

    /// The context stored in a timeline entry's `detail`, if it holds one.
    pub fn from_detail(detail: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        serde_json::from_value(detail.get("trace")?.clone()).ok()
    }
}

/// Fills `{trace_id}` and `{span_id}` in a project's trace URL template.
pub fn trace_url(template: &str, trace_id: &str, span_id: &str) -> String {
    template
        .replace("{trace_id}", trace_id)
        .replace("{span_id}", span_id)
}

/// Why a trace URL template was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceUrlTemplateError {
    /// Not an `http://` or `https://` URL.
    #[error(
        "must be an http:// or https:// URL, e.g. https://jaeger.example.com/trace/{{trace_id}}"
    )]
    NotHttp,
    /// No `{trace_id}` placeholder.
    #[error(
        "must contain the {{trace_id}} placeholder (and may contain {{span_id}}), e.g. https://jaeger.example.com/trace/{{trace_id}}"
    )]
    NoPlaceholder,
    /// Longer than 2,048 characters, or with spaces or control characters.
    #[error("must be at most 2048 characters, without spaces or control characters")]
    Malformed,
}

/// Checks a trace URL template: an http(s) URL with `{trace_id}`.
pub fn validate_trace_url_template(template: &str) -> Result<(), TraceUrlTemplateError> {
    if template.len() > 2048 || template.chars().any(|c| c.is_control() || c == ' ') {
        return Err(TraceUrlTemplateError::Malformed);
    }
    let lower = template.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or(TraceUrlTemplateError::NotHttp)?;
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with('{') {
        return Err(TraceUrlTemplateError::NotHttp);
    }
    if !template.contains("{trace_id}") {
        return Err(TraceUrlTemplateError::NoPlaceholder);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specification_example() {
        let p = TraceParent::parse(VALID).unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id_hex(), "00f067aa0ba902b7");
        assert!(p.sampled());
        assert_eq!(p.to_string(), VALID);
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn refuses_every_malformed_traceparent() {
        let cases = [
            ("", TraceError::Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                TraceError::Shape,
            ),
            // upper-case hex
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceError::Shape,
            ),
            // version 00 with a tail
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                TraceError::Shape,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceError::ForbiddenVersion,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceError::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceError::ZeroSpanId,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceError::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceError::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                TraceError::Shape,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceError::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
                TraceError::Shape,
            ),
            // a later version must separate its tail with `-`
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                TraceError::Shape,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(TraceParent::parse(value), Err(error), "{value:?}");
        }
    }

    #[test]
    fn a_later_version_keeps_its_first_four_fields() {
        let p = TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
            .unwrap();
        assert_eq!(p.to_string(), VALID);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags() {
        let p = TraceParent::parse(VALID).unwrap();
        let child = p.child([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        assert_ne!(p.child([0; 8]).span_id, [0; 8]);
    }

    #[test]
    fn tracestate_rules() {
        for ok in [
            "",
            "rojo=00f067aa0ba902b7",
            "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
            "t@sys=x",
        ] {
            assert_eq!(validate_tracestate(ok), Ok(()), "{ok:?}");
        }
        let too_many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in ["novalue", "Upper=x", "k=a,b=", "k=é", too_many.as_str()] {
            assert!(validate_tracestate(bad).is_err(), "{bad:?}");
        }
        assert!(validate_tracestate(&"a=b,".repeat(200)).is_err());
    }

    #[test]
    fn trace_url_templates() {
        assert_eq!(
            validate_trace_url_template(
                "https://ui.honeycomb.io/t/environments/prod/trace?trace_id={trace_id}&span={span_id}"
            ),
            Ok(())
        );
        assert_eq!(
            validate_trace_url_template("ftp://x/{trace_id}"),
            Err(TraceUrlTemplateError::NotHttp)
        );
        assert_eq!(
            validate_trace_url_template("https://jaeger.local/trace/"),
            Err(TraceUrlTemplateError::NoPlaceholder)
        );
        assert_eq!(
            validate_trace_url_template("https://x/ {trace_id}"),
            Err(TraceUrlTemplateError::Malformed)
        );
        assert_eq!(
            trace_url("https://j/trace/{trace_id}?s={span_id}", "ab", "cd"),
            "https://j/trace/ab?s=cd"
        );
    }
}
