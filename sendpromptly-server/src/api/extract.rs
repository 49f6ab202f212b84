//! Request extractors that turn every malformed input into a clear
//! [`ApiError`] (never axum's plain-text rejections).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub use crate::auth::Caller;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::MissingApiKey)
    }
}

/// A JSON body: 415 unless declared JSON, 413 over the limit, 400 if not
/// JSON, 422 naming the field if it does not fit `T`.
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body means `T::default()`.
pub struct OptionalApiJson<T>(pub T);

pub(super) fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

pub(super) async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest {
                message: format!("could not read the request body: {}", rejection.body_text()),
                param: None,
            }
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = is_json_content_type(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(T::default()));
        }
        if !declared_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(OptionalApiJson)
    }
}

/// Parses a JSON object body into `T` with the API's error rules.
///
/// A body that is a JSON object fitting `T` is read straight from the bytes
/// (the hot path: no intermediate `serde_json::Value`); anything else is read
/// again through a `Value`, which finds the error to answer.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if object && let Ok(parsed) = serde_json::from_slice::<T>(bytes) {
        return Ok(parsed);
    }
    parse_json_slowly(bytes)
}

/// [`parse_json`] through a `serde_json::Value`: the error names the field.
fn parse_json_slowly<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::MalformedJson(format!("the body is not valid JSON: {err}")))?;
    if !value.is_object() {
        return Err(ApiError::MalformedJson(
            "the body must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        let param = match field_named_in(&message) {
            Some(field) if path == "." => field,
            Some(field) if !path.ends_with(&field) => format!("{path}.{field}"),
            _ => path,
        };
        ApiError::invalid(param, message)
    })
}

/// Pulls the field name out of serde's "missing field `x`" / "unknown field `x`".
fn field_named_in(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

/// Query-string parameters by name (the filters of the contract parse
/// them: `sendpromptly_core::wire::IncidentFilter::from_query`).
pub struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            map.insert(key.into_owned(), value.into_owned());
        }
        Ok(QueryParams(map))
    }
}

impl QueryParams {
    /// A string parameter; an empty value counts as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// A path segment; a malformed one is a 400 naming it.
pub struct PathSegments(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for PathSegments {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(params) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest {
                    message: format!("malformed path: {}", rejection.body_text()),
                    param: None,
                })?;
        Ok(PathSegments(params.into_iter().map(|(_, v)| v).collect()))
    }
}

impl PathSegments {
    /// The first path parameter.
    pub fn first(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The second path parameter.
    pub fn second(&self) -> &str {
        self.0.get(1).map_or("", String::as_str)
    }
}

/// The raw request body, whatever its content type (the provider tap
/// verifies signatures over the exact bytes); 413 over the body limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state)
            .await
            .map(RawBody)
            .map_err(|err| match err {
                ApiError::PayloadTooLarge => ApiError::ProviderPayloadTooLarge,
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendpromptly_core::model::Receipt;

    fn both(body: &str) -> (Result<Receipt, String>, Result<Receipt, String>) {
        (
            parse_json::<Receipt>(body.as_bytes()).map_err(|e| e.to_string()),
            parse_json_slowly::<Receipt>(body.as_bytes()).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn the_direct_parse_agrees_with_the_value_parse() {
        for body in [
            r#"{"provider":"stripe","event_id":"evt_1","event_type":"invoice.paid"}"#,
            " \n{\"provider\":\"stripe\",\"event_id\":\"evt_1\",\"event_type\":\"x\",\"metadata\":{\"a\":1,\"a\":2}}",
            // A repeated field: serde refuses it read directly, the Value keeps the last.
            r#"{"provider":"stripe","event_id":"evt_1","event_id":"evt_2","event_type":"x"}"#,
            r#"["stripe","evt_1","invoice.paid"]"#,
            r#"{"provider":"stripe","event_id":"evt_1"}"#,
            r#"{"provider":"stripe","event_id":"evt_1","event_type":"x","nope":1}"#,
            r#"{"provider":"stripe","event_id":"evt_1","event_type":"x"} trailing"#,
            "{",
        ] {
            let (direct, slow) = both(body);
            assert_eq!(direct, slow, "{body}");
        }
        let (repeated, _) =
            both(r#"{"provider":"stripe","event_id":"evt_1","event_id":"evt_2","event_type":"x"}"#);
        assert_eq!(repeated.unwrap().event_id, "evt_2");
        let array = parse_json::<Receipt>(br#"["stripe","evt_1","invoice.paid"]"#);
        assert!(
            matches!(array, Err(ApiError::MalformedJson(_))),
            "{array:?}"
        );
    }
}
