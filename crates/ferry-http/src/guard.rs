//! The checks every request passes before a handler runs: Host (DNS rebinding), rate
//! limit, authentication, role, and for cookie-carried mutations the CSRF token and
//! Origin.
//!
//! They are axum middleware, so no handler can forget one: a route is either in the
//! public set (health, the OpenAPI document, login, the dashboard's static files) or
//! behind [`require_auth`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::auth::{AuthFailure, Principal};
use crate::error::ApiError;
use crate::role::Role;
use crate::server::Server;

/// The header the dashboard sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The client's address, when the server was started with connect info.
pub fn remote(req_ext: &axum::http::Extensions) -> Option<IpAddr> {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The host part of a `Host` (or Origin authority) value: `[::1]:8080` → `[::1]`,
/// `Example.COM:80` → `example.com`.
fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let host = if a.starts_with('[') {
        // `[v6]` or `[v6]:port`; anything else after `]` makes it no host of ours.
        match a.split_once(']') {
            Some((h, rest))
                if rest.is_empty()
                    || rest.strip_prefix(':').is_some_and(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())
                    }) =>
            {
                h.to_string() + "]"
            }
            _ => return String::new(),
        }
    } else if a.parse::<std::net::Ipv6Addr>().is_ok() {
        // A bare IPv6 address (as in a configured allowed host): bracket it.
        format!("[{a}]")
    } else {
        a.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(a, |(h, _)| h)
            .to_string()
    };
    host.to_ascii_lowercase()
}

fn host_allowed(server: &Server, host: &str) -> bool {
    let name = host_name(host);
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
        || server
            .config
            .allowed_hosts
            .iter()
            .any(|h| h == "*" || host_name(h) == name)
}

/// 421 unless the `Host` header names this server: a page on a rebound DNS name must
/// not reach the API with the victim's network position.
pub async fn check_host(State(server): State<Arc<Server>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    if !host_allowed(&server, &host) {
        return ApiError::new(
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            format!(
                "host '{}' is not served here; add it with `ferry serve --allow-host {}`",
                host_name(&host),
                host_name(&host)
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// 429 when the client sends more than the configured rate.
pub async fn rate_limit(State(server): State<Arc<Server>>, req: Request, next: Next) -> Response {
    let ip = remote(req.extensions()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Some(limiter) = &server.requests
        && let Err(not_until) = limiter.check_key(&ip)
    {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        return ApiError::rate_limited(not_until.wait_time_from(now).as_secs().max(1))
            .into_response();
    }
    next.run(req).await
}

/// Counts every routed request in `ferry_http_requests_total` by route, method and
/// status.
pub async fn count(State(server): State<Arc<Server>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    server
        .metrics
        .request(&method, &route, response.status().as_u16());
    response
}

/// 429 when `ip` failed to authenticate too often lately: asked *before* the token is
/// looked at, so a locked-out guesser learns nothing even from the right token.
pub fn check_lockout(server: &Server, ip: IpAddr) -> Result<(), ApiError> {
    match server.auth_failures.as_ref().and_then(|t| t.locked_for(ip)) {
        Some(seconds) => Err(ApiError::rate_limited(seconds)),
        None => Ok(()),
    }
}

/// Records a failed authentication for `ip`.
pub fn note_auth_failure(server: &Server, ip: IpAddr) {
    if let Some(t) = &server.auth_failures {
        t.failed(ip);
    }
}

/// Whether `method` only reads.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The Origin / Fetch-Metadata check for a browser request: a request another site
/// made the browser send is refused.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return Err(ApiError::csrf(
            "cross-site requests may not change anything",
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    if origin == "null" || authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
        return Err(ApiError::csrf(format!(
            "origin '{origin}' is not this server ({host}); mutations must come from the dashboard itself"
        )));
    }
    Ok(())
}

fn check_csrf(principal: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &principal.csrf else {
        return Ok(());
    };
    same_origin(headers)?;
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::csrf(
            "missing or wrong X-CSRF-Token header (the dashboard sends the one /api/session returns)",
        ));
    }
    Ok(())
}

/// The role a request needs: reading needs `read`, everything else `admin`; logging
/// out needs only a session.
fn needed_role(method: &Method, path: &str) -> Role {
    if is_read(method) || path == "/api/logout" {
        Role::Read
    } else {
        Role::Admin
    }
}

/// Authenticates, checks the role and (for cookie sessions) CSRF, then hands the
/// [`Principal`] to the handler as a request extension.
pub async fn require_auth(
    State(server): State<Arc<Server>>,
    mut req: Request,
    next: Next,
) -> Response {
    match authorize(&server, &req) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

fn authorize(server: &Server, req: &Request) -> Result<Principal, ApiError> {
    let ip = remote(req.extensions()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    check_lockout(server, ip)?;
    let principal = match server.auth.principal(req.headers()) {
        Ok(p) => p,
        Err(AuthFailure::Missing) => {
            return Err(ApiError::unauthenticated(
                "send `Authorization: Bearer TOKEN` (ferry serve prints the token when it generates one) or log in to the dashboard",
            ));
        }
        Err(AuthFailure::Invalid) => {
            note_auth_failure(server, ip);
            return Err(ApiError::unauthenticated(
                "the token or session is not valid (sessions end after the session lifetime or a server restart)",
            ));
        }
    };
    let needed = needed_role(req.method(), req.uri().path());
    if !principal.role.allows(needed) {
        return Err(ApiError::forbidden(format!(
            "token '{}' has role {}; this needs {}",
            principal.actor,
            principal.role.as_str(),
            needed.as_str()
        )));
    }
    if !is_read(req.method()) {
        check_csrf(&principal, req.headers())?;
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_drop_ports_and_case() {
        assert_eq!(host_name("Example.COM:8080"), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("[::1]evil.example"), "");
        assert_eq!(host_name("[::1].evil.example:80"), "");
        assert_eq!(host_name("2001:db8::1"), "[2001:db8::1]");
        assert_eq!(host_name("[2001:DB8::1]:8080"), "[2001:db8::1]");
    }

    #[test]
    fn foreign_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            "http://127.0.0.1:8080".parse().expect("header"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            "http://evil.example".parse().expect("header"),
        );
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, "null".parse().expect("header"));
        assert!(same_origin(&h).is_err());
    }
}
