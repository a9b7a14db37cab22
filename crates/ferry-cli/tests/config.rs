//! End-to-end tests of configuration: `ferry.toml`, `FERRY_*` variables and flags, in
//! that order of precedence (flags win), run as real processes in a temp directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// A temp directory that is the working directory of every run, with a `file:`
/// backend inside it.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn backend(&self) -> String {
        format!("file:{}", self.path().join("data").display())
    }

    /// Writes `ferry.toml` (or another file) in the directory.
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(name), text).expect("write config");
    }

    /// Runs `ferry ARGS` here with `env` and no other FERRY_* variable.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FERRY_") {
                cmd.env_remove(name);
            }
        }
        cmd.current_dir(self.path())
            .env("TMPDIR", self.path())
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("run ferry")
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "ferry {args:?} failed with {}: {}",
            out.status,
            stderr(&out)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        serde_json::from_str(&self.ok(args, env)).expect("JSON")
    }

    /// The queues as `{name: queue}` from `queue list --json`.
    fn queue(&self, name: &str) -> Value {
        let list = self.json(&["queue", "list", "--json"], &[]);
        list["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name} in {list}"))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status 2 with one line on stderr containing every needle.
fn assert_usage_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err:?}");
    for needle in needles {
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = Dir::new();
    dir.write(
        "ferry.toml",
        &format!(
            "backend = {:?}\n\n[queue.create]\nmax_attempts = 4\nlease = \"2m\"\n",
            dir.backend()
        ),
    );
    let env = [("FERRY_QUEUE_CREATE_MAX_ATTEMPTS", "6")];
    dir.ok(&["queue", "create", "from-file"], &[]);
    dir.ok(&["queue", "create", "from-env"], &env);
    dir.ok(
        &["queue", "create", "from-flag", "--max-attempts", "8"],
        &env,
    );

    // The backend came from the file too: every command above used the same data.
    assert_eq!(dir.queue("from-file")["max_attempts"], 4);
    assert_eq!(dir.queue("from-file")["lease_ms"], 120_000);
    assert_eq!(dir.queue("from-env")["max_attempts"], 6);
    assert_eq!(
        dir.queue("from-env")["lease_ms"],
        120_000,
        "other keys still from the file"
    );
    assert_eq!(dir.queue("from-flag")["max_attempts"], 8);

    // Without the file: the built-in default.
    std::fs::remove_file(dir.path().join("ferry.toml")).expect("remove");
    let backend = dir.backend();
    dir.ok(&["--backend", &backend, "queue", "create", "built-in"], &[]);
    let list = dir.json(&["--backend", &backend, "queue", "list", "--json"], &[]);
    let built_in = list["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "built-in"))
        .cloned()
        .expect("queue built-in");
    assert_eq!(built_in["max_attempts"], 10);
}

#[test]
fn a_required_option_and_switches_from_the_file() {
    let dir = Dir::new();
    dir.write(
        "ferry.toml",
        &format!(
            "backend = {:?}\n[consume]\nexec = \"cat >/dev/null\"\nuntil-empty = true\n\
             concurrency = 2\n[send]\nheader = [\"origin=config\"]\n",
            dir.backend()
        ),
    );
    dir.ok(&["queue", "create", "jobs"], &[]);
    dir.ok(&["send", "jobs", "one", "--id", "m1"], &[]);
    // --exec and --until-empty come from the file, so this returns once the queue is empty.
    dir.ok(&["consume", "jobs"], &[]);
    let stats = dir.json(&["stats", "--json"], &[]);
    assert_eq!(stats["queues"][0]["ready"], 0, "{stats}");
    let history = dir.ok(&["inspect", "jobs", "m1"], &[]);
    assert!(history.contains("acked"), "{history}");
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let dir = Dir::new();
    dir.write("ferry.toml", "[queue.create]\nmax-attemps = 3\n");
    let out = dir.run(&["stats"], &[]);
    assert_usage_error(
        &out,
        &[
            "ferry.toml: unknown key 'queue.create.max-attemps'",
            "max-attempts",
        ],
    );

    dir.write("ferry.toml", "[consum]\nconcurrency = 3\n");
    let out = dir.run(&["stats"], &[]);
    assert_usage_error(&out, &["unknown key 'consum'", "consume"]);
}

#[test]
fn wrong_type_is_an_error_naming_the_key() {
    let dir = Dir::new();
    for (text, key) in [
        (
            "[queue.create]\nmax-attempts = \"many\"\n",
            "'queue.create.max-attempts'",
        ),
        (
            "[queue.create]\nmax-attempts = 0\n",
            "'queue.create.max-attempts'",
        ),
        (
            "[consume]\nuntil-empty = \"yes\"\n",
            "'consume.until-empty'",
        ),
        ("[consume]\nbackoff = [1, 2]\n", "'consume.backoff'"),
        ("[send]\nheader = \"novalue\"\n", "'send.header'"),
    ] {
        dir.write("ferry.toml", text);
        let out = dir.run(&["stats"], &[]);
        assert_usage_error(&out, &["ferry.toml", key]);
    }
    dir.write("ferry.toml", "[consume\nconcurrency = 3\n");
    let out = dir.run(&["stats"], &[]);
    assert_usage_error(&out, &["ferry.toml: line 1"]);
}

#[test]
fn explicit_config_that_does_not_exist_is_an_error() {
    let dir = Dir::new();
    let out = dir.run(&["--config", "missing.toml", "stats"], &[]);
    assert_usage_error(&out, &["missing.toml", "does not exist"]);
    let out = dir.run(&["stats"], &[("FERRY_CONFIG", "gone.toml")]);
    assert_usage_error(&out, &["gone.toml", "FERRY_CONFIG"]);
}

#[test]
fn config_named_with_the_flag_or_the_environment() {
    let dir = Dir::new();
    dir.write(
        "other.toml",
        &format!(
            "backend = {:?}\n[queue.create]\ndelay = \"3s\"\n",
            dir.backend()
        ),
    );
    dir.ok(&["queue", "create", "a", "--config", "other.toml"], &[]);
    dir.ok(&["queue", "create", "b"], &[("FERRY_CONFIG", "other.toml")]);
    let list = dir.json(&["--config=other.toml", "queue", "list", "--json"], &[]);
    let delays: Vec<&Value> = list["queues"]
        .as_array()
        .map(|qs| qs.iter().map(|q| &q["default_delay_ms"]).collect())
        .unwrap_or_default();
    assert_eq!(delays, [&Value::from(3000), &Value::from(3000)], "{list}");
}

#[test]
fn show_masks_secrets_and_names_sources() {
    let dir = Dir::new();
    dir.write(
        "ferry.toml",
        "backend = \"redis://:hunter2@127.0.0.1:6379/0\"\n\
         [queue.create]\nmax-attempts = 4\n\
         [[serve.tokens]]\nname = \"ci\"\ntoken = \"tok-s3cret\"\nrole = \"admin\"\n",
    );
    let env = [("FERRY_CONSUME_CONCURRENCY", "3")];
    let doc = dir.json(&["config", "show", "--json"], &env);
    let text = doc.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("tok-s3cret"), "{text}");
    let setting = |key: &str| {
        doc["settings"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == key))
            .cloned()
            .unwrap_or_else(|| panic!("no setting {key} in {text}"))
    };
    assert_eq!(
        setting("backend")["value"],
        "redis://:****@127.0.0.1:6379/0"
    );
    assert_eq!(setting("backend")["source"], "file");
    assert_eq!(setting("queue.create.max-attempts")["value"], "4");
    assert_eq!(setting("queue.create.max-attempts")["source"], "file");
    assert_eq!(
        setting("queue.create.max-attempts")["env"],
        "FERRY_QUEUE_CREATE_MAX_ATTEMPTS"
    );
    assert_eq!(setting("consume.concurrency")["value"], "3");
    assert_eq!(setting("consume.concurrency")["source"], "env");
    assert_eq!(setting("dlq.list.limit")["value"], "100");
    assert_eq!(setting("dlq.list.limit")["source"], "default");
    assert_eq!(setting("config")["value"], "ferry.toml");
    assert_eq!(doc["sections"]["serve.tokens"][0]["token"], "****");
    assert_eq!(doc["sections"]["serve.tokens"][0]["name"], "ci");
    // A flag wins, and its URL password is masked too; the table says the same.
    let out = dir.ok(
        &[
            "config",
            "show",
            "--backend",
            "amqp://guest:guest@rabbit:5672/%2f",
        ],
        &[("FERRY_TOKEN", "env-s3cret")],
    );
    assert!(!out.contains("guest@"), "{out}");
    assert!(!out.contains("env-s3cret"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let backend = out
        .lines()
        .find(|l| l.starts_with("backend "))
        .unwrap_or_else(|| panic!("no backend line in {out}"));
    assert!(
        backend.contains("amqp://guest:****@rabbit:5672/%2f"),
        "{backend}"
    );
    assert!(backend.contains(" flag "), "{backend}");
    assert!(
        out.contains("section serve.tokens (file): 1 entry"),
        "{out}"
    );
    // A secret option given in the environment (the server's token, in a build with
    // `ferry serve`): masked, with the option's own variable.
    if let Some(token) = out.lines().find(|l| l.starts_with("serve.token ")) {
        assert!(token.contains("****") && token.contains(" env "), "{token}");
        assert!(token.ends_with("FERRY_TOKEN"), "{token}");
    }
}

#[test]
fn check_says_which_file_and_that_it_is_valid() {
    let dir = Dir::new();
    let out = dir.ok(&["config", "check"], &[]);
    assert!(out.starts_with("no config file"), "{out}");
    dir.write("ferry.toml", "[consume]\nconcurrency = 4\nrate = 10\n");
    let out = dir.ok(&["config", "check"], &[]);
    assert_eq!(out.trim(), "ferry.toml: ok (2 options, 0 sections)");
}

#[test]
fn help_lists_the_variables_and_hides_secrets() {
    let dir = Dir::new();
    dir.write("ferry.toml", "backend = \"redis://:hunter2@h:6379\"\n");
    let help = dir.ok(&["queue", "create", "--help"], &[]);
    assert!(help.contains("FERRY_QUEUE_CREATE_MAX_ATTEMPTS"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}
