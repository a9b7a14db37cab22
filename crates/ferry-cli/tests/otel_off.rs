//! `--otel-endpoint` in a build without the `otel` feature: exit 2 with the rebuild
//! command, whether it comes from the flag, `FERRY_OTEL_ENDPOINT` or ferry.toml, before
//! any backend is opened. Unset (or empty), nothing changes.
#![cfg(not(feature = "otel"))]

use std::path::Path;
use std::process::{Command, Output};

const REBUILD: &str = "this ferry was built without OpenTelemetry; rebuild with \
                       `cargo build --release -p ferry-cli --features otel`";

fn ferry(dir: &Path, env: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.current_dir(dir)
        .env_remove("FERRY_BACKEND")
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_OTEL_ENDPOINT");
    if let Some(value) = env {
        cmd.env("FERRY_OTEL_ENDPOINT", value);
    }
    cmd.args(args).output().expect("run ferry")
}

fn assert_refused(out: &Output, how: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{how}: stderr:\n{stderr}");
    assert!(stderr.contains(REBUILD), "{how}: stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{how}: one line: {stderr}");
}

#[test]
fn an_endpoint_without_the_feature_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = ferry(
        dir.path(),
        None,
        &[
            "--backend",
            "memory:",
            "--otel-endpoint",
            "http://127.0.0.1:4318",
            "queue",
            "list",
        ],
    );
    assert_refused(&flag, "--otel-endpoint");
    // A global option: after the command too.
    let after = ferry(
        dir.path(),
        None,
        &[
            "--backend",
            "memory:",
            "stats",
            "--otel-endpoint",
            "http://127.0.0.1:4318",
        ],
    );
    assert_refused(&after, "stats --otel-endpoint");
    let env = ferry(
        dir.path(),
        Some("http://127.0.0.1:4318"),
        &["--backend", "memory:", "queue", "list"],
    );
    assert_refused(&env, "FERRY_OTEL_ENDPOINT");

    std::fs::write(
        dir.path().join("ferry.toml"),
        "otel-endpoint = \"http://127.0.0.1:4318\"\n",
    )
    .expect("write ferry.toml");
    let file = ferry(dir.path(), None, &["--backend", "memory:", "queue", "list"]);
    assert_refused(&file, "otel-endpoint in ferry.toml");
}

#[test]
fn no_endpoint_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for env in [None, Some("")] {
        let out = ferry(
            dir.path(),
            env,
            &[
                "--backend",
                "memory:",
                "--otel-service-name",
                "x",
                "queue",
                "list",
            ],
        );
        assert!(
            out.status.success(),
            "FERRY_OTEL_ENDPOINT={env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
