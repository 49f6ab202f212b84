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
    let project: String = url::form_urlencoded::byte_serialize(project_id.as_bytes()).collect();
    format!("{}?project={project}", incident_path(id))
}

/// The console's incident list.
pub const INCIDENTS_PATH: &str = "/incidents";

/// The console's Analytics page.
pub const ANALYTICS_PATH: &str = "/analytics";

/// The console's settings page.
pub const SETTINGS_PATH: &str = "/settings";
