//! `ferry doctor`: its exit statuses (0 without error findings, 1 with, 2 for a bad URL)
//! and its JSON, on the machine's Redis, on a local Redis started with an eviction
//! policy, and on the other backends.

// The Redis tests' helpers: local redis-server processes that die with the test process.
#[path = "../../ferry-redis/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};

use serde_json::Value;

fn doctor(backend: &str, json: bool) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.current_dir(dir.path())
        .env_remove("FERRY_BACKEND")
        .args(["--backend", backend, "doctor"]);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run ferry doctor")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn severity_of(report: &Value, check: &str) -> String {
    report["findings"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["check"] == check))
        .and_then(|f| f["severity"].as_str())
        .unwrap_or_else(|| panic!("no {check} finding: {report}"))
        .to_string()
}

/// The machine's Redis runs with `noeviction` and no persistence: a warning, exit 0.
#[test]
fn machine_redis_warns_and_exits_0() {
    let out = doctor("redis://127.0.0.1:6379", true);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let r = report(&out);
    assert_eq!(r["healthy"], true);
    assert_eq!(severity_of(&r, "eviction"), "ok");
    assert_eq!(severity_of(&r, "version"), "ok");
}

/// An eviction policy with a memory limit is an error: exit 1, in text and JSON.
#[test]
fn eviction_policy_exits_1() {
    let dir = support::TempDir::new("cli-doctor");
    let server = support::single(
        dir.path(),
        &["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let out = doctor(&server.url(), true);
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));
    let r = report(&out);
    assert_eq!(r["healthy"], false);
    assert_eq!(severity_of(&r, "eviction"), "error");
    assert_eq!(severity_of(&r, "persistence"), "warn");

    let out = doctor(&server.url(), false);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("no error line: {text}"));
    assert!(line.contains("eviction"), "{line}");
    assert!(
        line.contains("CONFIG SET maxmemory-policy noeviction"),
        "{line}"
    );
}

#[test]
fn other_backends() {
    let out = doctor("memory:", false);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));

    // A missing data directory is reported, not created.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = doctor(&format!("file:{}", data.display()), true);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(severity_of(&report(&out), "open"), "warn");
    assert!(!data.exists());

    // A bad URL is an input error.
    let out = doctor("nonsense", false);
    assert_eq!(out.status.code(), Some(2));
}
