//! Authentication of API requests: `Authorization: Bearer sp_…` resolved to
//! the [`Caller`] (its project and key), the per-key rate limit, and the
//! short-lived key cache of the two signal endpoints ([`key_cache`]).
//!
//! Who may call it: the API's router (the middlewares [`authenticate`] and
//! [`authenticate_signal`]) and its handlers (the [`Caller`] extractor);
//! [`crate::app`] holds the [`key_cache::SignalKeyCache`]. It reads the
//! [`crate::store`] and answers failures as [`ApiError`]s; it never calls
//! into the API's handlers or the console.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sendpromptly_core::model::Actor;
use sendpromptly_core::scope::ScopeSet;

use crate::app::AppState;
use crate::error::ApiError;
use crate::secrets;

pub mod key_cache;
pub mod scopes;
pub mod usage;

/// The caller of an authenticated `/v1` request (set by [`authenticate`]).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The project the key opens.
    pub project_id: String,
    /// The key's id.
    pub key_id: String,
    /// What the key may do.
    pub scopes: ScopeSet,
    /// The client IP as the server sees it: the TCP peer (a proxy's
    /// `X-Forwarded-For` is not trusted, as for the login throttle).
    pub ip: Option<String>,
}

impl Caller {
    /// The timeline actor for this caller.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key_id.clone())
    }

    /// This caller in the audit log.
    pub fn who(&self) -> crate::service::audit::Who {
        crate::service::audit::Who::api_key(&self.key_id, self.ip.clone())
    }
}

/// Resolves `Authorization: Bearer sp_…` to a [`Caller`], or 401;
/// 429 with `Retry-After` when the key is over its rate limit.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    authenticate_with(state, request, next, false).await
}

/// [`authenticate`] for the signal routes: the key may come from the
/// [`key_cache::SignalKeyCache`], and the handler gets the project as a
/// [`key_cache::SignalProject`].
pub async fn authenticate_signal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate_with(state, request, next, true).await
}

async fn authenticate_with(
    state: AppState,
    mut request: Request,
    next: Next,
    for_signal: bool,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().map(str::to_owned));
    let found = match bearer_key_hash(authorization) {
        Ok(key_hash) if for_signal => {
            signal_caller_of(&state, key_hash)
                .await
                .map(|(caller, project)| {
                    request
                        .extensions_mut()
                        .insert(key_cache::SignalProject(project));
                    caller
                })
        }
        Ok(key_hash) => caller_of(&state, &key_hash).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(mut caller) => {
            // The one scope check of the API (the route table in `scopes`).
            let path = request
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| request.uri().path(), |uri| uri.0.path());
            let required = scopes::required_scope(request.method(), path);
            if !caller.scopes.allows(required) {
                return ApiError::InsufficientScope {
                    required,
                    has: caller.scopes,
                }
                .into_response();
            }
            state
                .key_usage()
                .note(&caller.key_id, required, state.now());
            caller.ip = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip().to_string());
            if let Err(wait) = state.take_rate_token(&caller.key_id) {
                let retry_after_seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return ApiError::RateLimited {
                    retry_after_seconds: retry_after_seconds.max(1),
                }
                .into_response();
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// The SHA-256 of the `Authorization: Bearer sp_…` key, or why there is none.
fn bearer_key_hash(
    authorization: Option<Result<String, header::ToStrError>>,
) -> Result<Vec<u8>, ApiError> {
    let value = authorization
        .ok_or(ApiError::MissingApiKey)?
        .map_err(|_| ApiError::InvalidApiKey)?;
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or(ApiError::InvalidApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidApiKey);
    }
    let key = key.trim();
    if !key.starts_with(secrets::API_KEY_PREFIX) || key.len() > 200 {
        return Err(ApiError::InvalidApiKey);
    }
    Ok(secrets::hash_token(key))
}

/// The caller of an unrevoked key, read from the store.
async fn caller_of(state: &AppState, key_hash: &[u8]) -> Result<Caller, ApiError> {
    let stored = state
        .store()
        .api_key_by_hash(key_hash)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or(ApiError::InvalidApiKey)?;
    Ok(Caller {
        project_id: stored.project_id,
        key_id: stored.id,
        scopes: stored.scopes,
        ip: None,
    })
}

/// The caller of a signal and its project: from the key cache while fresh,
/// else read from the store (and cached).
async fn signal_caller_of(
    state: &AppState,
    key_hash: Vec<u8>,
) -> Result<(Caller, std::sync::Arc<crate::store::Project>), ApiError> {
    let now = std::time::Instant::now();
    if let Some(hit) = state.signal_keys().get(&key_hash, now) {
        return Ok(hit);
    }
    let caller = caller_of(state, &key_hash).await?;
    let project = std::sync::Arc::new(
        state
            .store()
            .project(&caller.project_id)
            .await?
            .ok_or(ApiError::InvalidApiKey)?,
    );
    state.signal_keys().put(
        key_hash,
        caller.clone(),
        std::sync::Arc::clone(&project),
        now,
    );
    Ok((caller, project))
}
