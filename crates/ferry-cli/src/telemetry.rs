//! Diagnostics on stderr, and optionally OpenTelemetry export of traces.
//!
//! Why optional, and off by default: most deployments read ferry's stderr and its
//! Prometheus `/metrics`, and an OTLP exporter is a dozen crates (protobuf, an HTTP
//! client, the SDK) that they would compile for nothing. So the exporter is behind the
//! `otel` cargo feature, and even a build with it exports nothing until
//! `--otel-endpoint URL` (`FERRY_OTEL_ENDPOINT`, `otel-endpoint` in ferry.toml) names a
//! collector. Asking for export from a build without the feature is an input error
//! (exit 2) that says how to rebuild, never a silent no-op: a missing trace should not
//! be found weeks later.
//!
//! With an endpoint, spans at INFO (one per HTTP request of `ferry serve`, see
//! `ferry_http::router`) go through a batch exporter, OTLP over HTTP with protobuf, to
//! `URL/v1/traces`; the stderr log is unchanged (`RUST_LOG`, WARN by default). The
//! exporter uses reqwest's blocking client (the batch exporter runs on its own thread,
//! outside tokio) with rustls and the ring provider the rest of the build uses; a
//! second provider (aws-lc-rs) would make rustls panic. [`Telemetry::shutdown`] flushes
//! what is buffered before the process exits.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// The stderr log's filter: `RUST_LOG`, else WARN.
fn stderr_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// What `main` keeps until the process exits: the trace exporter, if one runs.
#[derive(Debug)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// Installs the global tracing subscriber: the stderr log, plus span export when
/// `endpoint` is set (and not empty). On a bad endpoint, or an endpoint in a build
/// without the `otel` feature, reports it and returns the exit status (2).
pub fn init(endpoint: Option<&str>, service_name: &str) -> Result<Telemetry, ExitCode> {
    match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(stderr_filter())
                .with_writer(std::io::stderr)
                .init();
            Ok(Telemetry {
                #[cfg(feature = "otel")]
                provider: None,
            })
        }
        Some(endpoint) => export(endpoint, service_name).map_err(|e| crate::exit::report(&e)),
    }
}

#[cfg(not(feature = "otel"))]
fn export(_endpoint: &str, _service_name: &str) -> ferry::Result<Telemetry> {
    Err(ferry::Error::invalid_input(
        "--otel-endpoint is set, but this ferry was built without OpenTelemetry; rebuild with \
         `cargo build --release -p ferry-cli --features otel`",
    ))
}

#[cfg(feature = "otel")]
fn export(endpoint: &str, service_name: &str) -> ferry::Result<Telemetry> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let url = traces_url(endpoint)?;
    // For https collectors: the provider the rest of the build uses. An error only
    // means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| ferry::Error::invalid_input(format!("cannot export traces to {url}: {e}")))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build();
    let tracer = provider.tracer("ferry");
    // INFO spans of every crate, except those of the exporter and its HTTP stack (which
    // would trace their own exports). Targets are prefixes: `opentelemetry` covers
    // `opentelemetry_sdk` and `opentelemetry-otlp`, whose warnings (a collector that
    // does not answer) still reach the stderr log.
    let exported = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(stderr_filter()),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(exported),
        )
        .init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// The OTLP/HTTP traces URL for a collector URL: `/v1/traces` appended unless there.
#[cfg(feature = "otel")]
fn traces_url(endpoint: &str) -> ferry::Result<String> {
    let lower = endpoint.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ferry::Error::invalid_input(format!(
            "--otel-endpoint must be an http:// or https:// URL (the collector's OTLP/HTTP \
             port, usually 4318), not '{}'",
            crate::config::mask::url(endpoint)
        )));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    })
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter (a no-op without one).
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: exporting the last traces failed: {e}");
        }
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::traces_url;

    #[test]
    fn traces_path_is_appended_once() {
        let url = |e| traces_url(e).expect("valid");
        assert_eq!(url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(url("https://c/otlp"), "https://c/otlp/v1/traces");
        assert_eq!(url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert!(traces_url("c:4318").is_err());
    }
}
