//! The authenticated caller of a handler, with its address for the audit log.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferry_core::{QueueName, TopicName};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::Server;

/// Who is calling (set by [`crate::guard::require_auth`]) and from where.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name and role.
    pub principal: Principal,
    /// The client's address, when known.
    pub remote: Option<String>,
}

impl FromRequestParts<Arc<Server>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<Server>,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is missing the authentication layer"))?;
        let remote = crate::guard::remote(&parts.extensions).map(|ip| ip.to_string());
        Ok(Caller { principal, remote })
    }
}

impl Caller {
    /// Writes an audit entry for a change this caller made.
    pub async fn audit(
        &self,
        server: &Server,
        action: &str,
        target: impl Into<String>,
        count: u64,
        detail: Option<String>,
    ) {
        server
            .audit_change(
                &self.principal,
                self.remote.clone(),
                action,
                target.into(),
                count,
                detail,
            )
            .await;
    }
}

/// A queue name from the path; 400 `invalid_name` when it is not one.
pub fn queue(name: &str) -> Result<QueueName, ApiError> {
    QueueName::new(name).map_err(ApiError::from)
}

/// A topic name from the path; 400 `invalid_name` when it is not one.
pub fn topic(name: &str) -> Result<TopicName, ApiError> {
    TopicName::new(name).map_err(ApiError::from)
}
