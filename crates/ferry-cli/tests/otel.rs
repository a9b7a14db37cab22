//! OpenTelemetry export of traces (`--features otel`): `ferry serve --otel-endpoint`
//! sends a span per HTTP request to an OTLP/HTTP collector.
//!
//! A local receiver (axum on 127.0.0.1:0) stands in for the collector and records every
//! POST to /v1/traces. The test starts `ferry serve` with `--otel-endpoint` pointing at
//! it, makes a few API requests, stops the server with SIGTERM (it shuts down
//! gracefully, and the exporter flushes before the process exits) and checks that the
//! traces arrived, as protobuf, naming the routes and the service.
//!
//! ```sh
//! cargo test -p ferry-cli --features otel --test otel
//! ```
#![cfg(feature = "otel")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;

/// How long it may take to stop (and flush its traces) after SIGTERM.
const STOP: Duration = Duration::from_secs(30);

/// One POST the receiver got: its content type and body.
type Export = (String, Vec<u8>);

/// The stand-in collector: records every POST to /v1/traces.
fn start_receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<Export>>>) {
    let got: Arc<Mutex<Vec<Export>>> = Arc::default();
    let record = Arc::clone(&got);
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                record
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((kind, body.to_vec()));
                // An empty ExportTraceServiceResponse: full success.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

/// The running server; killed when dropped, so a failed assertion never leaves it behind.
struct Server(support::serve::Served);

impl Server {
    fn start(data: &Path, token: &str, otel: &str) -> Server {
        let mut cmd = support::serve::command(data);
        cmd.env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_TRACES_SAMPLER")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .env_remove("RUST_LOG")
            .args(["--otel-endpoint", otel])
            .args(["serve", "--bind", "127.0.0.1:0", "--token", token]);
        Server(support::serve::Served::start(cmd))
    }

    fn stderr(&self) -> String {
        self.0.stderr()
    }

    /// One HTTP/1.1 request over a fresh connection; the status code.
    fn request(&self, method: &str, path: &str, token: &str, body: &str) -> u16 {
        let mut stream = TcpStream::connect(self.0.addr()).expect("connect to ferry serve");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.0.addr(),
            body.len()
        )
        .expect("send request");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
    }

    /// Sends SIGTERM and waits for the process to exit.
    fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP;
        loop {
            if let Some(status) = self.0.child.try_wait().expect("wait for ferry serve") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not stop within {STOP:?} of SIGTERM; its stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn serve_exports_a_span_per_request() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (collector, got) = start_receiver(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "otel-test-token-0123"; // 20 characters
    let mut server = Server::start(&dir.path().join("data"), token, &collector);

    assert_eq!(
        server.request("POST", "/api/queues", token, r#"{"name":"traced"}"#),
        200,
        "create a queue; stderr:\n{}",
        server.stderr()
    );
    assert_eq!(server.request("GET", "/api/queues", token, ""), 200);
    assert_eq!(server.request("GET", "/api/queues/traced", token, ""), 200);
    assert_eq!(server.request("GET", "/healthz", token, ""), 200);
    assert_eq!(server.request("GET", "/no/such/route", token, ""), 404);

    let status = server.terminate();
    let stderr = server.stderr();
    assert!(
        status.success(),
        "ferry serve exited with {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("ferry serve: stopped"),
        "no graceful stop; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("warning: exporting") && !stderr.contains("Export"),
        "an export failed; stderr:\n{stderr}"
    );

    let got = got
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(
        !got.is_empty(),
        "the receiver got no POST /v1/traces; ferry's stderr:\n{stderr}"
    );
    for (kind, _) in &got {
        assert_eq!(
            kind, "application/x-protobuf",
            "OTLP over HTTP with protobuf"
        );
    }
    let all: Vec<u8> = got.iter().flat_map(|(_, body)| body.clone()).collect();
    for needle in [
        "/api/queues",
        "GET /api/queues",
        "POST /api/queues",
        "GET /api/queues/{queue}",
        "GET /healthz",
        "http.route",
        "http.response.status_code",
        // The default --otel-service-name.
        "service.name",
        "ferry",
    ] {
        assert!(
            contains(&all, needle),
            "no {needle:?} in the {} exported request(s)",
            got.len()
        );
    }
    // Spans are named by route, never by the raw path.
    assert!(!contains(&all, "/no/such/route"), "a raw path was exported");
}
