-- A project's trace URL template (issue #25): a link from each traced
-- timeline entry to the trace in Jaeger, Tempo, Honeycomb, Datadog…, with
-- {trace_id} (and {span_id}) placeholders. NULL: no links.
ALTER TABLE projects ADD COLUMN trace_url_template TEXT;
