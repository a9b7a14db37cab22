//! End-to-end tests of the `ferry` binary: real processes on a real data directory,
//! checking stdout, stderr and exit statuses the way a user or a script sees them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A fresh data directory and the `--backend` URL pointing at it.
struct Env {
    dir: tempfile::TempDir,
    backend: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = format!("file:{}", dir.path().join("data").display());
        Env { dir, backend }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry --backend ... ARGS` in the temp dir.
    fn ferry(&self, args: &[&str]) -> Output {
        self.ferry_stdin(args, None)
    }

    fn ferry_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.current_dir(self.path())
            .env_remove("FERRY_BACKEND")
            .env("TMPDIR", self.path())
            .arg("--backend")
            .arg(&self.backend)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ferry");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input)
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait for ferry")
    }

    /// Runs and asserts success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("valid JSON")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status 2 with exactly one non-empty line on stderr containing `needle`.
fn assert_usage_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn queue_create_list_delete() {
    let env = Env::new();
    env.ok(&[
        "queue",
        "create",
        "orders",
        "--max-attempts",
        "5",
        "--lease",
        "1m",
    ]);
    env.ok(&["queue", "create", "emails", "--delay", "500ms"]);
    // Updating one setting keeps the others.
    env.ok(&["queue", "create", "orders", "--delay", "2s"]);

    let list = env.json(&["queue", "list", "--json"]);
    let queues = list["queues"].as_array().expect("queues array");
    let names: Vec<&str> = queues.iter().filter_map(|q| q["name"].as_str()).collect();
    assert_eq!(names, ["emails", "orders"]);
    assert_eq!(queues[1]["max_attempts"], 5);
    assert_eq!(queues[1]["lease_ms"], 60_000);
    assert_eq!(queues[1]["default_delay_ms"], 2000);
    assert_eq!(queues[0]["default_delay_ms"], 500);

    let table = env.ok(&["queue", "list"]);
    assert!(table.starts_with("QUEUE"), "{table}");
    assert!(table.contains("orders"), "{table}");

    env.ok(&["queue", "delete", "emails"]);
    let list = env.json(&["queue", "list", "--json"]);
    assert_eq!(list["queues"].as_array().map(Vec::len), Some(1));

    let out = env.ferry(&["queue", "delete", "emails"]);
    assert_usage_error(&out, "ferry queue create emails");
}

#[test]
fn send_then_consume_until_empty() {
    let env = Env::new();
    env.ok(&["queue", "create", "jobs"]);
    let id = env.ok(&["send", "jobs", "first", "--id", "job-1", "--header", "k=v"]);
    assert_eq!(id.trim(), "job-1");
    let out = env.ferry_stdin(&["send", "jobs"], Some(b"second"));
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    // Sending the same id again is a no-op with a note.
    let dup = env.ferry(&["send", "jobs", "first", "--id", "job-1"]);
    assert!(dup.status.success());
    assert!(stderr(&dup).contains("already queued"), "{}", stderr(&dup));

    let out = env.ferry(&[
        "consume",
        "jobs",
        "--exec",
        r#"p=$(cat); printf '%s\n' "$p" >> out.txt; echo "$FERRY_MESSAGE_ID $FERRY_QUEUE $FERRY_ATTEMPT [$FERRY_ROUTE_KEY]" >> env.txt; echo handled"#,
        "--until-empty",
        "--concurrency",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Child stdout passes through.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("handled")
            .count(),
        2
    );
    let summary = stderr(&out);
    assert!(
        summary.contains("received 2, acked 2, retried 0, dead-lettered 0"),
        "{summary}"
    );

    let mut payloads: Vec<String> = std::fs::read_to_string(env.path().join("out.txt"))
        .expect("out.txt")
        .lines()
        .map(str::to_string)
        .collect();
    payloads.sort();
    assert_eq!(payloads, ["first", "second"]);
    let envs = std::fs::read_to_string(env.path().join("env.txt")).expect("env.txt");
    assert!(envs.contains("job-1 jobs 1 []"), "{envs}");

    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["queues"][0]["ready"], 0);
}

#[test]
fn failing_command_ends_in_dead_letters_and_can_be_requeued() {
    let env = Env::new();
    env.ok(&["queue", "create", "jobs"]);
    env.ok(&["send", "jobs", "payload-a", "--id", "a"]);
    env.ok(&["send", "jobs", "payload-b", "--id", "b"]);

    let out = env.ferry(&[
        "consume",
        "jobs",
        "--exec",
        "echo 'it broke' >&2; exit 3",
        "--max-attempts",
        "2",
        "--backoff",
        "10ms",
        "--until-empty",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("it broke"),
        "child stderr passes through: {err}"
    );
    assert!(err.contains("retried 2, dead-lettered 2"), "{err}");

    let list = env.json(&["dlq", "list", "jobs", "--json"]);
    let dead = list["dead_letters"].as_array().expect("array");
    assert_eq!(dead.len(), 2);
    for d in dead {
        assert_eq!(d["reason"], "max_attempts");
        assert_eq!(d["attempts"], 2);
        let e = d["last_error"].as_str().expect("error");
        assert!(e.starts_with("exit status 3"), "{e}");
        assert!(e.contains("it broke"), "{e}");
    }

    let shown = env.json(&["dlq", "show", "jobs", "a", "--json"]);
    assert_eq!(shown["payload"], "payload-a");
    assert_eq!(shown["payload_encoding"], "utf8");
    let text = env.ok(&["dlq", "show", "jobs", "a"]);
    assert!(
        text.contains("payload-a") && text.contains("exit status 3"),
        "{text}"
    );

    // An unknown id changes nothing and says so.
    let out = env.ferry(&["dlq", "requeue", "jobs", "a", "nope"]);
    assert_usage_error(&out, "'nope'");

    env.ok(&["dlq", "requeue", "jobs", "a"]);
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["queues"][0]["ready"], 1);
    assert_eq!(stats["queues"][0]["dead"], 1);

    // The requeued message is processed by a fixed worker.
    env.ok(&[
        "consume",
        "jobs",
        "--exec",
        "cat > fixed.txt",
        "--until-empty",
    ]);
    let fixed = std::fs::read_to_string(env.path().join("fixed.txt")).expect("fixed.txt");
    assert_eq!(fixed, "payload-a");

    env.ok(&["dlq", "requeue", "jobs", "--all"]);
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["queues"][0]["dead"], 0);
    assert_eq!(stats["queues"][0]["ready"], 1);
}

#[test]
fn dlq_delete_and_purge() {
    let env = Env::new();
    env.ok(&["queue", "create", "jobs", "--max-attempts", "1"]);
    for id in ["a", "b", "c"] {
        env.ok(&["send", "jobs", id, "--id", id]);
    }
    env.ok(&["consume", "jobs", "--exec", "exit 1", "--until-empty"]);
    let list = env.json(&[
        "dlq", "list", "jobs", "--json", "--limit", "2", "--offset", "1",
    ]);
    assert_eq!(list["dead_letters"].as_array().map(Vec::len), Some(2));
    let none = env.json(&["dlq", "list", "jobs", "--json", "--reason", "rejected"]);
    assert_eq!(none["dead_letters"].as_array().map(Vec::len), Some(0));

    env.ok(&["dlq", "delete", "jobs", "a"]);
    env.ok(&["dlq", "purge", "jobs"]);
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["queues"][0]["dead"], 0);
}

#[test]
fn stats_json_shape() {
    let env = Env::new();
    env.ok(&["queue", "create", "b"]);
    env.ok(&["queue", "create", "a"]);
    env.ok(&["send", "a", "now"]);
    env.ok(&["send", "a", "later", "--delay", "1h"]);
    let raw = env.ok(&["stats", "--json"]);
    let at = |key: &str| raw.find(&format!("\"{key}\"")).expect(key);
    assert!(
        at("queues") < at("name")
            && at("name") < at("ready")
            && at("ready") < at("delayed")
            && at("delayed") < at("in_flight")
            && at("in_flight") < at("dead"),
        "fields in the documented order: {raw}"
    );
    let stats: Value = serde_json::from_str(&raw).expect("JSON");
    let obj = stats.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["queues"]);
    let queues = stats["queues"].as_array().expect("array");
    assert_eq!(queues.len(), 2);
    for q in queues {
        let mut keys: Vec<&String> = q.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["dead", "delayed", "in_flight", "name", "ready"]);
    }
    assert_eq!(queues[0]["name"], "a");
    assert_eq!(queues[0]["ready"], 1);
    assert_eq!(queues[0]["delayed"], 1);

    let table = env.ok(&["stats"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("QUEUE"), "{table}");
    // Columns are aligned: every line is as wide as the header.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
}

#[test]
fn publish_through_a_binding() {
    let env = Env::new();
    env.ok(&["queue", "create", "billing"]);
    env.ok(&["queue", "create", "audit"]);
    env.ok(&["topic", "create", "orders"]);
    env.ok(&["topic", "bind", "orders", "billing", "order.*.paid"]);
    env.ok(&["topic", "bind", "orders", "audit", "order.#"]);
    let bindings = env.ok(&["topic", "bindings", "orders"]);
    assert!(
        bindings.contains("order.*.paid") && bindings.contains("order.#"),
        "{bindings}"
    );
    assert_eq!(env.ok(&["topic", "list"]).trim(), "orders");

    let out = env.ok(&[
        "publish",
        "orders",
        "order.eu.paid",
        "{\"n\":1}",
        "--id",
        "o1",
    ]);
    assert_eq!(out.trim(), "o1 -> audit, billing");
    let out = env.ok(&["publish", "orders", "order.created", "x"]);
    assert!(out.trim().ends_with("-> audit"), "{out}");

    let out = env.ferry(&["publish", "orders", "invoice.sent", "x"]);
    assert_usage_error(&out, "no binding");

    env.ok(&["topic", "unbind", "orders", "audit", "order.#"]);
    let out = env.ok(&["publish", "orders", "order.us.paid", "x"]);
    assert!(out.trim().ends_with("-> billing"), "{out}");

    env.ok(&[
        "consume",
        "billing",
        "--exec",
        r#"echo "$FERRY_ROUTE_KEY" >> keys.txt"#,
        "--until-empty",
    ]);
    let keys = std::fs::read_to_string(env.path().join("keys.txt")).expect("keys.txt");
    assert_eq!(keys, "order.eu.paid\norder.us.paid\n");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let env = Env::new();
    env.ok(&["queue", "create", "jobs"]);

    let out = env.ferry(&["send", "jobs", "x", "--delay", "5 minutes"]);
    assert_usage_error(&out, "500ms");
    let out = env.ferry(&["queue", "create", "q", "--lease", "10"]);
    assert_usage_error(&out, "30s");

    let out = env.ferry(&["queue", "create", "my queue"]);
    assert_usage_error(&out, "A-Z a-z 0-9");
    let out = env.ferry(&["send", "no/such", "x"]);
    assert_usage_error(&out, "queue name");

    let out = env.ferry(&["send", "jobs", "x", "--header", "novalue"]);
    assert_usage_error(&out, "KEY=VALUE");

    let out = env.ferry(&["send", "missing", "x"]);
    assert_usage_error(&out, "ferry queue create missing");
    let out = env.ferry(&["consume", "missing", "--exec", "true", "--until-empty"]);
    assert_usage_error(&out, "ferry queue create missing");

    let out = env.ferry(&["send"]);
    assert_usage_error(&out, "<QUEUE>");
    let out = env.ferry(&["frobnicate"]);
    assert_usage_error(&out, "frobnicate");
    let out = env.ferry(&["topic", "bind", "t", "jobs", "a.b*"]);
    assert_usage_error(&out, "whole words");

    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--backend", "nonsense", "stats"])
        .output()
        .expect("run");
    assert_usage_error(&out, "file:");
}

#[test]
fn unreachable_backend_exits_1() {
    // Nothing listens on port 1: the backend is down, not the input wrong.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--backend", "postgres://postgres@127.0.0.1:1/test", "stats"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn backend_from_environment() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_BACKEND", &env.backend)
        .args(["queue", "create", "from-env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = env.json(&["queue", "list", "--json"]);
    assert_eq!(list["queues"][0]["name"], "from-env");
}

#[test]
fn timeout_kills_the_command() {
    let env = Env::new();
    env.ok(&["queue", "create", "slow", "--max-attempts", "1"]);
    env.ok(&["send", "slow", "x", "--id", "s1"]);
    let started = std::time::Instant::now();
    env.ok(&[
        "consume",
        "slow",
        "--exec",
        "exec sleep 30",
        "--timeout",
        "200ms",
        "--until-empty",
    ]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let d = env.json(&["dlq", "show", "slow", "s1", "--json"]);
    assert_eq!(d["reason"], "timeout");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_gracefully() {
    let env = Env::new();
    env.ok(&["queue", "create", "jobs"]);
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(env.path())
        .args([
            "--backend",
            &env.backend,
            "consume",
            "jobs",
            "--exec",
            "cat",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("SIGTERM") && err.contains("received 0"),
        "{err}"
    );
}

#[test]
fn demo_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("294 processed"), "{stdout}");
    assert!(stdout.contains("6 dead-lettered"), "{stdout}");
    assert!(stdout.contains("email-050"), "{stdout}");
    assert!(stdout.contains("dlq requeue"), "{stdout}");
    // The printed data directory holds the demo's data.
    let kept: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
}

#[test]
fn bench_small_run() {
    let env = Env::new();
    let out = env.ok(&[
        "bench",
        "--messages",
        "500",
        "--batch",
        "50",
        "--consumers",
        "2",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("enqueue_jobs_per_s="), "{out}");
    assert!(lines[0].contains(" process_jobs_per_s="), "{out}");
    assert!(lines[1].contains("p99"), "{out}");
    // The bench queue is gone.
    let list = env.json(&["queue", "list", "--json"]);
    assert_eq!(list["queues"].as_array().map(Vec::len), Some(0));
}

/// The binary speaks to the machine's Redis too (`--backend redis://...`).
#[test]
fn redis_backend_send_consume_stats() {
    let mut env = Env::new();
    env.backend = "redis://127.0.0.1:6379".to_string();
    let queue = format!("cli-redis-{}-{}", std::process::id(), fastrand::u32(..));
    let run = |args: &[&str]| env.ferry(args);
    let out = run(&["queue", "create", &queue]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["send", &queue, "hello", "--id", "r1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "consume",
        &queue,
        "--exec",
        "cat > /dev/null",
        "--until-empty",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("acked 1"), "{}", stderr(&out));
    let out = run(&["inspect", &queue, "r1"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("acked"),
        "{}",
        stderr(&out)
    );
    let out = run(&["queue", "delete", &queue]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The binary speaks to the machine's RabbitMQ too (`--backend amqp://...`): each
/// command is its own process and connection, so the queue, its messages and their
/// history live on the broker, not in the CLI.
#[test]
fn rabbitmq_backend_send_consume_inspect() {
    let mut env = Env::new();
    env.backend = "amqp://guest:guest@127.0.0.1:5672/%2f".to_string();
    let queue = format!("cli-amqp-{}-{}", std::process::id(), fastrand::u32(..));
    let run = |args: &[&str]| env.ferry(args);
    let out = run(&["queue", "create", &queue, "--max-attempts", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (id, body) in [("a1", "fine"), ("a2", "broken")] {
        let out = run(&["send", &queue, body, "--id", id]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(&[
        "consume",
        &queue,
        "--exec",
        "grep -q fine",
        "--until-empty",
        "--backoff",
        "10ms",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("acked 1"), "{}", stderr(&out));
    let out = run(&["inspect", &queue, "a1"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("acked"),
        "{}",
        stderr(&out)
    );
    let out = run(&["dlq", "list", &queue]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("a2"),
        "the failing message is a dead letter on the broker: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let out = run(&["queue", "delete", &queue]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `consume --from-redis-list`: payloads an unchanged producer LPUSHed to a plain list
/// (here redis-cli) all reach the command, through a queue named after the key; with a
/// backend that is not Redis the flag is an input error.
#[test]
fn consume_from_a_plain_redis_list() {
    let mut env = Env::new();
    let file_backend = env.backend.clone();
    env.backend = "redis://127.0.0.1:6379".to_string();
    let key = format!(
        "ferry-test-cli-list-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    );
    let payloads = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let mut push = vec!["LPUSH", key.as_str()];
    push.extend(payloads);
    redis_cli(&push);
    let handled = env.path().join("handled.txt");
    let exec = format!("cat >> '{0}'; echo >> '{0}'", handled.display());
    let out = env.ferry(&[
        "consume",
        "--from-redis-list",
        &key,
        "--exec",
        &exec,
        "--until-empty",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("acked 5"), "{}", stderr(&out));
    assert!(stderr(&out).contains("moved 5"), "{}", stderr(&out));
    let text = std::fs::read_to_string(&handled).expect("handled file");
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want = payloads.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(redis_cli(&["LLEN", &key]).trim(), "0");
    let queue = format!("redis-list.{key}");
    let stats = env.json(&["stats", &queue, "--json"]);
    assert_eq!(stats["queues"][0]["ready"], 0, "{stats}");
    assert_eq!(stats["queues"][0]["in_flight"], 0, "{stats}");
    env.ok(&["queue", "delete", &queue]);
    for part in ["seq", "moving", "moving_at", "rejected"] {
        redis_cli(&["DEL", &format!("{{{key}}}:ferry:list:{part}")]);
    }

    env.backend = file_backend;
    let out = env.ferry(&["consume", "--from-redis-list", &key, "--exec", "cat"]);
    assert_usage_error(&out, "needs a Redis backend");
    let out = env.ferry(&["consume", "--exec", "cat"]);
    assert_usage_error(&out, "QUEUE");
}

/// Without `--backend` and `FERRY_BACKEND`, the Redis Streams tool's variables choose
/// the Redis deployment; inconsistent ones are an input error naming the variable.
#[test]
fn redis_from_the_streams_tool_variables() {
    let env = Env::new();
    let queue = format!("cli-redis-env-{}-{}", std::process::id(), fastrand::u32(..));
    let ferry = |vars: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.current_dir(env.path())
            .env_remove("FERRY_BACKEND")
            .env_remove("REDIS_MODE")
            .env_remove("REDIS_ADDRS")
            .env_remove("REDIS_MASTER_NAME")
            .env_remove("REDIS_PASSWORD");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.args(args).output().expect("run")
    };
    let vars = [("REDIS_MODE", "single"), ("REDIS_ADDRS", "127.0.0.1:6379")];
    let out = ferry(&vars, &["queue", "create", &queue]);
    assert!(out.status.success(), "{}", stderr(&out));
    // It went to Redis, not to ./ferry-data.
    assert!(!env.path().join("ferry-data").exists());
    let out = ferry(
        &[],
        &[
            "--backend",
            "redis://127.0.0.1:6379",
            "queue",
            "delete",
            &queue,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ferry(&[("REDIS_MODE", "sentinel")], &["stats"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("REDIS_MASTER_NAME"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cli_changes_are_audited_beside_the_data() {
    let env = Env::new();
    for args in [
        &["queue", "create", "audited", "--max-attempts", "1"][..],
        &["topic", "create", "t"],
        &["topic", "bind", "t", "audited", "a.*"],
        &["dlq", "purge", "audited"],
        &["queue", "delete", "audited"],
    ] {
        let out = env.ferry(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env.ferry(&["audit", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "queue.delete",
            "dead_letters.purge",
            "topic.bind",
            "topic.create",
            "queue.create"
        ],
        "newest first"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("cli:")))
    );
    assert_eq!(entries[0]["seq"], 5);
    assert!(
        env.path().join("data").join("audit.jsonl").exists(),
        "the log sits beside the data"
    );
    let table = env.ferry(&["audit"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("dead_letters.purge") && text.contains("SEQ"),
        "{text}"
    );
    // Reads are not changes.
    assert!(env.ferry(&["queue", "list"]).status.success());
    assert!(env.ferry(&["stats"]).status.success());
    let lines = String::from_utf8_lossy(&env.ferry(&["audit", "--json"]).stdout)
        .lines()
        .count();
    assert_eq!(lines, 5);
}

/// `ferry tx list|show` report what a two-phase send left prepared, as a table and as
/// JSON, and say so when a backend keeps none.
#[test]
fn tx_list_and_show_prepared_messages() {
    use ferry::tx::{Destination, TxStore};
    let env = Env::new();
    let out = env.ferry(&["tx", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no prepared messages"),
        "{}",
        stderr(&out)
    );

    let dir = env.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let driver = ferry::embedded::EmbeddedDriver::open(&dir).expect("open");
        let store = driver.tx_store();
        let dest = Destination::queue(ferry::QueueName::new("orders").expect("name"));
        let msg = ferry::Message::new("order 7 created")
            .with_id("order-7")
            .with_header("tenant", "eu");
        store
            .prepare(&dest, &msg, std::time::Duration::from_secs(60))
            .await
            .expect("prepare");
        driver.close();
    });

    let out = env.ferry(&["tx", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("order-7") && text.contains("queue:orders") && text.contains("prepared"),
        "{text}"
    );

    let out = env.ferry(&["tx", "show", "order-7", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["payload"], "order 7 created");
    assert_eq!(doc["headers"]["tenant"], "eu");
    assert_eq!(doc["checks"], 0);

    let out = env.ferry(&["tx", "show", "nope"]);
    assert!(!out.status.success(), "a missing id fails");

    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--backend", "memory:", "tx", "list"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("keeps no prepared"),
        "{}",
        stderr(&out)
    );
}
