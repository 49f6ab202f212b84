//! The console's addresses that other parts of the server link to (alert
//! messages, the API's answers): paths under the console's root, `/`,
//! joined to `--public-url` by the caller. They live here, not in
//! [`crate::console`], so that the background work can name them without
//! depending on the console; the console re-exports them.

/// The console page of incident `id` (a path under the console's root, `/`;
/// alert links are built from it and `--public-url`).
pub fn incident_path(id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/incidents/{}", id.replace('+', "%20"))
}

/// [`incident_path`] for a link from outside the console (an alert): it
/// names the incident's project, which the console switches to on opening
/// it, whichever project the reader had chosen.
pub fn incident_link_path(project_id: &str, id: &str) -> String {
    with_project(&incident_path(id), project_id)
}

/// [`SETTINGS_PATH`] for a link from outside the console (a test alert):
/// the settings of `project_id`, not of whichever project the reader's
/// console had chosen (which may be one where they are not an admin).
pub fn settings_link_path(project_id: &str) -> String {
    with_project(SETTINGS_PATH, project_id)
}

/// `path` with the `?project=` the console switches to on opening it.
fn with_project(path: &str, project_id: &str) -> String {
    let project: String = url::form_urlencoded::byte_serialize(project_id.as_bytes()).collect();
    format!("{path}?project={project}")
}

/// The console's incident list.
pub const INCIDENTS_PATH: &str = "/incidents";

/// The console's Analytics page.
pub const ANALYTICS_PATH: &str = "/analytics";

/// The console's settings page.
pub const SETTINGS_PATH: &str = "/settings";
