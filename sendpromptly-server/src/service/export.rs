//! The incident export: the incident list's filter, read page by page
//! (keyset) and encoded chunk by chunk in the core's formats
//! ([`sendpromptly_core::export`]), so any number of incidents takes
//! constant memory. The API and the console stream the chunks as a
//! response body (a client hanging up drops the stream: no further page is
//! read); the CLI writes them to standard output.

use sendpromptly_core::export::{CSV_COLUMNS, ExportFormat, csv_cells};
use sendpromptly_core::wire::IncidentDetail;

use super::{ServiceError, ServiceResult};
use crate::store::{IncidentFilter, Store, StoredEvent};

/// Incidents read (and encoded) per chunk.
pub const EXPORT_PAGE: u32 = 500;

/// Where an export stands: the next chunk is the next page.
#[derive(Debug)]
pub struct Export {
    project_id: String,
    filter: IncidentFilter,
    format: ExportFormat,
    cursor: Option<String>,
    started: bool,
    done: bool,
}

impl Export {
    /// An export of `project_id`'s incidents matching `filter`.
    pub fn new(project_id: &str, filter: IncidentFilter, format: ExportFormat) -> Self {
        Export {
            project_id: project_id.to_owned(),
            filter,
            format,
            cursor: None,
            started: false,
            done: false,
        }
    }

    /// The format.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// The next chunk (the CSV header with the first page); `None` when
    /// the export is complete.
    pub async fn next_chunk(&mut self, store: &dyn Store) -> ServiceResult<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let page = store
            .export_incidents(
                &self.project_id,
                &self.filter,
                self.cursor.as_deref(),
                EXPORT_PAGE,
            )
            .await?;
        let chunk = encode(self.format, !self.started, &page.data)?;
        self.started = true;
        self.cursor = page.next_cursor;
        self.done = self.cursor.is_none();
        Ok(Some(chunk))
    }
}

/// One page in `format` (with the CSV header when `first`).
fn encode(format: ExportFormat, first: bool, page: &[StoredEvent]) -> ServiceResult<Vec<u8>> {
    let details = page.iter().filter_map(|stored| {
        let incident = sendpromptly_core::wire::IncidentView::of(&stored.record)?;
        Some(IncidentDetail {
            incident,
            event: (&stored.record).into(),
            timeline: stored.timeline.clone(),
        })
    });
    match format {
        ExportFormat::Jsonl => {
            let mut out = Vec::with_capacity(page.len() * 1024);
            for detail in details {
                serde_json::to_writer(&mut out, &detail).map_err(internal)?;
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::with_capacity(page.len() * 1024));
            if first {
                writer
                    .write_record(CSV_COLUMNS.iter().map(|(name, _)| *name))
                    .map_err(internal)?;
            }
            for detail in details {
                writer
                    .write_record(csv_cells(&detail).map_err(internal)?)
                    .map_err(internal)?;
            }
            writer.into_inner().map_err(internal)
        }
    }
}

fn internal(err: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("export encoding: {err}"))
}

/// The export's chunks as a stream, from its first chunk (read already, so
/// that a refusal is an error status rather than a cut body): each later
/// page is read only when the consumer asks for it, so a dropped stream (a
/// client that hung up) reads nothing more.
pub fn into_stream(
    state: crate::app::AppState,
    first: Vec<u8>,
    export: Export,
) -> impl futures_util::Stream<Item = ServiceResult<Vec<u8>>> + Send + 'static {
    use futures_util::StreamExt;
    let rest = futures_util::stream::unfold((state, export), |(state, mut export)| async move {
        match export.next_chunk(state.store()).await {
            Ok(Some(chunk)) => Some((Ok(chunk), (state, export))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "incident export failed mid-stream; the body is cut short");
                export.done = true;
                Some((Err(err), (state, export)))
            }
        }
    });
    futures_util::stream::once(async move { Ok(first) }).chain(rest)
}
