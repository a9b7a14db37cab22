//! The server's settings, with defaults that are safe on an untrusted network.
//!
//! `ferry serve` fills this from flags, `FERRY_*` variables and `ferry.toml`; an
//! application mounting the router builds it in code.

use std::time::Duration;

use crate::role::TokenConfig;

/// Settings of the HTTP layer.
///
/// ```
/// use ferry_http::{Role, ServerConfig, TokenConfig};
/// let config = ServerConfig::default()
///     .with_token(TokenConfig::new("ops", "0123456789abcdef0123", Role::Admin)?)
///     .with_allowed_host("ferry.internal");
/// assert_eq!(config.max_body_bytes, 1024 * 1024);
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The tokens that may use the API. Empty means nobody can (the CLI generates one).
    pub tokens: Vec<TokenConfig>,
    /// Host names (without port) the `Host` header may name; `*` turns the check off.
    /// Loopback names are always allowed.
    pub allowed_hosts: Vec<String>,
    /// Largest request body. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Requests per second per client address, with bursts of twice that; 0 turns the
    /// limit off. Default 50.
    pub rate_limit_per_second: u32,
    /// Failed logins or bad tokens per minute per client address before 429. Default 20.
    pub auth_failures_per_minute: u32,
    /// Serve `/metrics` without a token (for a Prometheus on a trusted network).
    /// Default off.
    pub public_metrics: bool,
    /// How long a dashboard session lasts. Default 12 h.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set when served behind HTTPS).
    pub secure_cookies: bool,
    /// How often queue counts are sampled for charts, rates and alerts. Default 5 s.
    pub sample_interval: Duration,
    /// Samples kept for charts. Default 360 (30 minutes at 5 s).
    pub samples_kept: usize,
    /// The backend as shown to operators (its URL without secrets).
    pub backend_label: String,
    /// Longest long-poll a receive may ask for. Default 30 s.
    pub max_wait: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tokens: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 1024 * 1024,
            rate_limit_per_second: 50,
            auth_failures_per_minute: 20,
            public_metrics: false,
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            sample_interval: Duration::from_secs(5),
            samples_kept: 360,
            backend_label: String::new(),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// Adds a token.
    pub fn with_token(mut self, token: TokenConfig) -> Self {
        self.tokens.push(token);
        self
    }

    /// Allows another `Host` name.
    pub fn with_allowed_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into());
        self
    }

    /// Sets the request rate limit per client (0 = off).
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit_per_second = per_second;
        self
    }

    /// Sets the largest request body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Serves `/metrics` without a token.
    pub fn with_public_metrics(mut self, yes: bool) -> Self {
        self.public_metrics = yes;
        self
    }

    /// Sets what operators see as the backend.
    pub fn with_backend_label(mut self, label: impl Into<String>) -> Self {
        self.backend_label = label.into();
        self
    }
}
