//! `ferry serve`: the HTTP API, dashboard, metrics and health checks over the backend.
//!
//! Secure by default: with no token configured it generates an admin token, prints it
//! once, and refuses any address but loopback (a generated token printed to a terminal
//! must not become the only lock on a network-facing server).

use std::net::SocketAddr;
use std::sync::Arc;

use ferry::{Driver, Error, ErrorKind, Result};
use ferry_http::alerts::{Alerts, AlertsConfig};
use ferry_http::{AuditLog, Role, Server, ServerConfig, TokenConfig, generate_token};

use crate::args::ServeArgs;
use crate::config::Config;

/// The tokens from flags, environment and `[[serve.tokens]]`; a generated admin token
/// (and its announcement) when there are none.
fn tokens(args: &ServeArgs, config: &Config) -> Result<(Vec<TokenConfig>, Option<String>)> {
    let mut tokens = Vec::new();
    if let Some(t) = args.token.as_deref().filter(|t| !t.is_empty()) {
        tokens.push(TokenConfig::new("admin", t, Role::Admin)?);
    }
    if let Some(t) = args.read_token.as_deref().filter(|t| !t.is_empty()) {
        tokens.push(TokenConfig::new("read", t, Role::Read)?);
    }
    if let Some(more) = config.section_as::<Vec<TokenConfig>>("serve.tokens")? {
        for t in more {
            t.validate()?;
            tokens.push(t);
        }
    }
    if !tokens.is_empty() {
        return Ok((tokens, None));
    }
    if !args.bind.ip().is_loopback() {
        return Err(Error::invalid_input(format!(
            "no token is configured, so ferry serve only listens on loopback, not {}; set --token or FERRY_TOKEN (e.g. $(openssl rand -hex 24)) or [[serve.tokens]] in ferry.toml",
            args.bind
        )));
    }
    let secret = generate_token()?;
    tokens.push(TokenConfig::new(
        "generated-admin",
        secret.clone(),
        Role::Admin,
    )?);
    Ok((tokens, Some(secret)))
}

fn alerts(config: &Config) -> Result<Option<Alerts>> {
    match config.section_as::<AlertsConfig>("serve.alerts")? {
        Some(c) => Ok(Some(Alerts::new(c)?)),
        None => Ok(None),
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(
    backend: &str,
    driver: Arc<dyn Driver>,
    args: ServeArgs,
    audit_path: &std::path::Path,
    config: &Config,
) -> Result<()> {
    // reqwest (alert webhooks) uses rustls without choosing a provider; pick ring, the
    // one the rest of the build uses. An error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (tokens, generated) = tokens(&args, config)?;
    let mut server_config = ServerConfig::default()
        .with_max_body_bytes(args.max_body)
        .with_rate_limit(args.rate_limit)
        .with_public_metrics(args.public_metrics)
        .with_backend_label(crate::config::mask::url(backend));
    for t in tokens {
        server_config = server_config.with_token(t);
    }
    for h in &args.allow_hosts {
        server_config = server_config.with_allowed_host(h.clone());
    }
    if !args.bind.ip().is_unspecified() && !args.bind.ip().is_loopback() {
        server_config = server_config.with_allowed_host(args.bind.ip().to_string());
    }
    server_config.secure_cookies = args.secure_cookies;
    server_config.sample_interval = args
        .sample_interval
        .max(std::time::Duration::from_millis(100));
    let mut builder = Server::builder(driver.clone())
        .config(server_config)
        .audit(AuditLog::open(audit_path)?);
    if let Some(a) = alerts(config)? {
        builder = builder.alerts(a);
    }
    let server = builder.build()?;

    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot listen on {}: {e}", args.bind),
            )
            .with_source(e)
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorKind::Io, "listener address").with_source(e))?;
    let url = match addr {
        SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => format!("http://{a}"),
    };
    if let Some(secret) = &generated {
        eprintln!(
            "ferry serve: no token configured; generated an admin token (shown once, not stored):"
        );
        eprintln!("  {secret}");
        eprintln!("  log in to the dashboard with it, or send `Authorization: Bearer <token>`");
    }
    eprintln!("ferry serve: backend {}", crate::config::mask::url(backend));
    eprintln!("ferry serve: audit log {}", audit_path.display());
    eprintln!("ferry serve: listening on {url}");

    let sampler = server.spawn_sampler();
    let demo = if args.demo {
        Some(super::serve_demo::start(server.clone()).await?)
    } else {
        None
    };
    let app = ferry_http::router(server);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    sampler.abort();
    if let Some(demo) = demo {
        demo.stop().await;
    }
    eprintln!("ferry serve: stopped");
    served.map_err(|e| Error::new(ErrorKind::Io, format!("server failed: {e}")).with_source(e))
}
