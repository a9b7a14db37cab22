//! Who is asking: bearer tokens for programs, session cookies for the dashboard.
//!
//! A program sends `Authorization: Bearer TOKEN` on every request; a browser logs in once
//! with the token and then carries an `HttpOnly; SameSite=Strict` session cookie, which is
//! ambient (the browser attaches it by itself), so only cookie-carried mutations need the
//! CSRF token that [`crate::guard`] checks. Tokens are compared in constant time, and
//! sessions live in this process only: a restart logs everyone out, which is the safe
//! direction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use subtle::ConstantTimeEq;

use crate::role::{Role, TokenConfig, generate_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ferry_session";

/// Most sessions kept at once; the oldest go first when full.
const MAX_SESSIONS: usize = 10_000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: what the audit log shows.
    pub actor: String,
    /// What the caller may do.
    pub role: Role,
    /// The session's CSRF token when the caller came with the session cookie (and so
    /// must prove a mutation is deliberate); `None` for a bearer token.
    pub csrf: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    actor: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// Tokens and live sessions.
pub struct Auth {
    tokens: Vec<TokenConfig>,
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What failed when authenticating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Nothing was presented.
    Missing,
    /// A token or session was presented and is not valid.
    Invalid,
}

impl Auth {
    /// Authentication with these tokens; sessions last `ttl`.
    pub fn new(tokens: Vec<TokenConfig>, ttl: Duration) -> Self {
        Auth {
            tokens,
            sessions: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// The token matching `presented`, compared in constant time against every
    /// configured token (so timing tells neither which token nor how much matched).
    pub fn check_token(&self, presented: &str) -> Option<&TokenConfig> {
        let mut found = None;
        for t in &self.tokens {
            // ct_eq on slices of different lengths is false without looking at the
            // bytes; a length is not the secret.
            if bool::from(t.secret().as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(t);
            }
        }
        found
    }

    /// Starts a session for a valid token: returns (session id, csrf token).
    pub fn login(&self, token: &TokenConfig) -> ferry_core::Result<(String, String)> {
        let id = generate_token()?;
        let csrf = generate_token()?;
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                actor: token.name().to_string(),
                role: token.role(),
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Ok((id, csrf))
    }

    /// Ends the session with this id (no-op if unknown).
    pub fn logout(&self, session: &str) {
        self.lock().remove(session);
    }

    /// How long a session lasts.
    pub fn session_ttl(&self) -> Duration {
        self.ttl
    }

    /// Who sent these headers: a bearer token wins over a cookie.
    pub fn principal(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let text = value.to_str().map_err(|_| AuthFailure::Invalid)?;
            let token = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
                .ok_or(AuthFailure::Invalid)?;
            let t = self.check_token(token.trim()).ok_or(AuthFailure::Invalid)?;
            return Ok(Principal {
                actor: t.name().to_string(),
                role: t.role(),
                csrf: None,
            });
        }
        let Some(id) = session_cookie(headers) else {
            return Err(AuthFailure::Missing);
        };
        let sessions = self.lock();
        // Session ids are random 256-bit values used as map keys; looking one up
        // leaks nothing useful about other ids.
        match sessions.get(&id) {
            Some(s) if s.expires > Instant::now() => Ok(Principal {
                actor: s.actor.clone(),
                role: s.role,
                csrf: Some(s.csrf.clone()),
            }),
            _ => Err(AuthFailure::Invalid),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding this lock cannot leave the map half-updated (every
        // change is one insert or remove), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Auth {
        let admin = TokenConfig::new("ops", "a".repeat(20), Role::Admin).expect("token");
        let read = TokenConfig::new("viewer", "b".repeat(20), Role::Read).expect("token");
        Auth::new(vec![admin, read], Duration::from_secs(60))
    }

    #[test]
    fn bearer_tokens_map_to_their_role() {
        let a = auth();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", "b".repeat(20))).expect("header"),
        );
        let p = a.principal(&h).expect("valid");
        assert_eq!(
            (p.actor.as_str(), p.role, p.csrf),
            ("viewer", Role::Read, None)
        );
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert_eq!(a.principal(&h), Err(AuthFailure::Invalid));
        assert_eq!(a.principal(&HeaderMap::new()), Err(AuthFailure::Missing));
    }

    #[test]
    fn sessions_carry_csrf_and_end_at_logout() {
        let a = auth();
        let token = a.check_token(&"a".repeat(20)).cloned().expect("token");
        let (id, csrf) = a.login(&token).expect("login");
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).expect("header"),
        );
        let p = a.principal(&h).expect("session");
        assert_eq!(p.role, Role::Admin);
        assert_eq!(p.csrf.as_deref(), Some(csrf.as_str()));
        a.logout(&id);
        assert_eq!(a.principal(&h), Err(AuthFailure::Invalid));
    }
}
