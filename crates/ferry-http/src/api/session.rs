//! Dashboard login: exchange the token for a session cookie and a CSRF token.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Principal, SESSION_COOKIE, session_cookie};
use crate::body::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::guard::{check_lockout, note_auth_failure, remote, same_origin};
use crate::server::Server;

/// `POST /api/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
}

fn cookie(server: &Server, value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let secure = if server.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::internal("session cookie encoding"))
}

/// `POST /api/login`: a valid token starts a session.
pub async fn login(State(server): State<Arc<Server>>, req: Request) -> Response {
    match login_inner(&server, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn login_inner(server: &Arc<Server>, req: Request) -> ApiResult<Response> {
    let ip = remote(req.extensions()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    same_origin(req.headers())?;
    check_lockout(server, ip)?;
    let ApiJson(body) = ApiJson::<Login>::from_request_json(req, server).await?;
    let Some(token) = server.auth.check_token(body.token.trim()).cloned() else {
        note_auth_failure(server, ip);
        return Err(ApiError::unauthenticated("that token is not valid"));
    };
    let (id, csrf) = server.auth.login(&token)?;
    let mut response =
        Json(json!({"role": token.role().as_str(), "actor": token.name(), "csrf": csrf}))
            .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(server, &id, server.auth.session_ttl().as_secs())?,
    );
    Ok(response)
}

/// `POST /api/logout`: ends the session.
pub async fn logout(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        server.auth.logout(&id);
    }
    let mut response = Json(json!({"ok": true})).into_response();
    if let Ok(c) = cookie(&server, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// `GET /api/session`: who this session is, and its CSRF token.
pub async fn session(Extension(principal): Extension<Principal>) -> Json<serde_json::Value> {
    Json(json!({
        "actor": principal.actor,
        "role": principal.role.as_str(),
        "csrf": principal.csrf,
    }))
}

impl<T: serde::de::DeserializeOwned> ApiJson<T> {
    /// Extracts the body from a whole request (for handlers that also read headers
    /// and extensions first).
    pub async fn from_request_json(req: Request, server: &Arc<Server>) -> ApiResult<Self> {
        <ApiJson<T> as axum::extract::FromRequest<Arc<Server>>>::from_request(req, server).await
    }
}
