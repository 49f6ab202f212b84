//! The incident export's two formats (`GET /v1/incidents/export`, the
//! console's Export buttons, `sendpromptly export incidents`).
//!
//! - **JSON Lines** (`jsonl`): one [`IncidentDetail`] per line, exactly the
//!   body of `GET /v1/incidents/{id}` (incident, event, full timeline with
//!   each entry's chain `hash`), newest incident first.
//! - **CSV** (`csv`, RFC 4180: comma-separated, fields quoted when they hold
//!   a comma, quote or line break, quotes doubled, CRLF-free `\n` rows): a
//!   header row of [`CSV_COLUMNS`]' names, then one row per incident in the
//!   same order. Each cell is the JSONL line's value at the column's JSON
//!   pointer, written as: a string as itself, `null` or absent as an empty
//!   cell, a number or boolean as its JSON text, an object or array as
//!   compact JSON. The `timeline` column holds the whole timeline as a JSON
//!   array, so a CSV row carries everything the JSONL line does.

use std::str::FromStr;

use crate::wire::IncidentDetail;

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON Lines.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

impl ExportFormat {
    /// The HTTP `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/jsonl; charset=utf-8",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// An export format that is not `jsonl` or `csv`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format `{0}`: use jsonl or csv")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// The CSV columns: `(header, JSON pointer into the JSONL line)`.
pub const CSV_COLUMNS: &[(&str, &str)] = &[
    ("incident_id", "/incident/id"),
    ("kind", "/incident/kind"),
    ("state", "/incident/state"),
    ("resolution", "/incident/resolution"),
    ("opened_at", "/incident/opened_at"),
    ("resolved_at", "/incident/resolved_at"),
    ("last_error", "/incident/last_error"),
    ("reopen_count", "/incident/reopen_count"),
    ("reprocess_count", "/incident/reprocess_count"),
    ("livemode", "/incident/livemode"),
    ("provider", "/event/provider"),
    ("event_id", "/event/event_id"),
    ("event_type", "/event/event_type"),
    ("subject", "/event/subject"),
    ("effect", "/event/effect"),
    ("event_state", "/event/state"),
    ("received_at", "/event/received_at"),
    ("deadline_at", "/event/deadline_at"),
    ("deliveries", "/event/deliveries"),
    ("metadata", "/event/metadata"),
    ("timeline", "/timeline"),
];

/// One cell's text for a JSON value (see the module docs).
pub fn cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The CSV cells of one incident, in [`CSV_COLUMNS`] order.
pub fn csv_cells(detail: &IncidentDetail) -> Result<Vec<String>, serde_json::Error> {
    let value = serde_json::to_value(detail)?;
    Ok(CSV_COLUMNS
        .iter()
        .map(|(_, pointer)| cell(value.pointer(pointer)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_parse_and_name_the_choices() {
        assert_eq!("csv".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
        assert_eq!("jsonl".parse::<ExportFormat>(), Ok(ExportFormat::Jsonl));
        let err = "xml".parse::<ExportFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown export format `xml`: use jsonl or csv"
        );
    }

    #[test]
    fn cells_follow_the_json_values() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(null))), "");
        assert_eq!(cell(Some(&json!("a,\"b\""))), "a,\"b\"");
        assert_eq!(cell(Some(&json!(3))), "3");
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(cell(Some(&json!([{"a": 1}]))), r#"[{"a":1}]"#);
    }
}
