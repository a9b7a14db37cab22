//! `RedisDriver::doctor` against local servers started with unsafe, safe and
//! locked-down settings, and the warning logged once at connect.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_redis::{Finding, RedisConfig, RedisDriver, Severity};

async fn doctor(server: &support::Server) -> Vec<Finding> {
    let config = RedisConfig::new(server.url()).with_check_settings(false);
    let d = RedisDriver::connect_with(config).await.expect("connect");
    d.doctor().await.expect("doctor")
}

fn find<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check} finding in {findings:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_is_an_error_and_no_persistence_a_warning() {
    let dir = support::TempDir::new("doctor-unsafe");
    let server = support::single(
        dir.path(),
        &[
            "--maxmemory",
            "100mb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--appendonly",
            "no",
            "--save",
            "",
        ],
    );
    let f = doctor(&server).await;
    let eviction = find(&f, "eviction");
    assert_eq!(eviction.severity, Severity::Error, "{f:#?}");
    assert!(
        eviction
            .message
            .contains("CONFIG SET maxmemory-policy noeviction"),
        "{eviction:?}"
    );
    let persistence = find(&f, "persistence");
    assert_eq!(persistence.severity, Severity::Warn, "{f:#?}");
    assert!(
        persistence.message.contains("CONFIG SET appendonly yes"),
        "{persistence:?}"
    );
    // The facts are reported too.
    assert_eq!(find(&f, "version").severity, Severity::Ok);
    assert_eq!(find(&f, "role").severity, Severity::Ok);
    assert!(find(&f, "memory").message.contains("maxmemory"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_settings_have_no_warnings() {
    let dir = support::TempDir::new("doctor-safe");
    let server = support::single(
        dir.path(),
        &["--appendonly", "yes", "--maxmemory-policy", "noeviction"],
    );
    let f = doctor(&server).await;
    assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");
    assert!(
        find(&f, "persistence").message.contains("everysec"),
        "{f:#?}"
    );
}

/// A managed-service style server without `CONFIG`: eviction still checked (from
/// INFO), persistence a warning that says why, and no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_config_the_doctor_warns_instead_of_failing() {
    let dir = support::TempDir::new("doctor-noconfig");
    let server = support::single(
        dir.path(),
        &["--appendonly", "yes", "--rename-command", "CONFIG", ""],
    );
    let f = doctor(&server).await;
    assert_eq!(find(&f, "eviction").severity, Severity::Ok, "{f:#?}");
    let p = find(&f, "persistence");
    assert_eq!(p.severity, Severity::Warn, "{f:#?}");
    assert!(p.message.contains("CONFIG is not available"), "{p:?}");
}

/// Log lines written by the `tracing` subscriber of this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Connect logs each unsafe setting once, in the background; with `check_settings`
/// off it logs nothing. (A current-thread runtime, so the spawned check runs under
/// this thread's subscriber.)
#[tokio::test]
async fn connect_warns_once_unless_turned_off() {
    let dir = support::TempDir::new("doctor-warn");
    let server = support::single(dir.path(), &["--save", "", "--appendonly", "no"]);
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let quiet = RedisConfig::new(server.url()).with_check_settings(false);
    let d = RedisDriver::connect_with(quiet).await.expect("connect");
    d.doctor().await.expect("doctor"); // gives a background check time to run
    assert!(!logs.text().contains("redis settings"), "{}", logs.text());

    let _d = RedisDriver::connect(&server.url()).await.expect("connect");
    ferry_testkit::eventually(Duration::from_secs(10), "the settings warning", || {
        let text = logs.text();
        async move { text.contains("no persistence").then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = logs.text();
    assert_eq!(text.matches("no persistence").count(), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
}
