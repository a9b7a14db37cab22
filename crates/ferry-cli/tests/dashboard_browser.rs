//! The dashboard of `ferry serve` driven by a real headless browser.
//!
//! Starts `ferry serve` on a fresh file backend with a random admin token, then runs
//! `node dashboard.test.mjs` in `crates/ferry-http/tests/browser`: the script seeds queues,
//! messages and dead letters through the HTTP API and drives Debian's Chromium through
//! playwright-core (login, overview, queue view, dead letters with an XSS probe that must
//! stay literal text, message detail, requeue, edit and requeue, purge confirmation, search,
//! topics, audit log, phone width, logout, the read-only role, no CSP violations).
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`, or `FERRY_CHROMIUM=path`), `node`,
//! and `npm ci` run in `crates/ferry-http/tests/browser`. With `FERRY_SCREENSHOTS=dir`
//! (relative to the workspace root) the script saves screenshots of the main pages there:
//!
//! ```sh
//! FERRY_SCREENSHOTS=docs/screenshots cargo test -p ferry-cli --test dashboard_browser -- --nocapture
//! ```

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the whole browser script may run (it waits for a few overview samples).
const SCRIPT: Duration = Duration::from_secs(300);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn browser_dir() -> PathBuf {
    workspace_root().join("crates/ferry-http/tests/browser")
}

/// The running server; killed when dropped, so a failed assertion never leaves it behind.
struct Server(support::serve::Served);

impl Server {
    fn start(data: &Path, token: &str, read_token: &str) -> Server {
        let mut cmd = support::serve::command(data);
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--token", token])
            .args(["--read-token", read_token]);
        Server(support::serve::Served::start(cmd))
    }

    fn stderr(&self) -> String {
        self.0.stderr()
    }
}

fn random_token() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..32)
        .map(|_| char::from(HEX[fastrand::usize(0..16)]))
        .collect()
}

fn check_prerequisites() -> String {
    let chromium = std::env::var("FERRY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the dashboard browser test needs Chromium at {chromium}: apt-get install chromium \
         (or set FERRY_CHROMIUM to a Chromium binary)"
    );
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("the dashboard browser test needs node on PATH: apt-get install nodejs npm"),
    }
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed for the dashboard browser test: run npm ci in \
         crates/ferry-http/tests/browser"
    );
    chromium
}

#[test]
fn dashboard_in_headless_chromium() {
    let chromium = check_prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = random_token();
    let read_token = random_token();
    let server = Server::start(&dir.path().join("data"), &token, &read_token);
    eprintln!("ferry serve is up at {}", server.0.url);

    let mut node = Command::new("node");
    node.arg("dashboard.test.mjs")
        .current_dir(browser_dir())
        .env("FERRY_URL", &server.0.url)
        .env("FERRY_TOKEN", &token)
        .env("FERRY_READ_TOKEN", &read_token)
        .env("FERRY_CHROMIUM", &chromium)
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(shots) = std::env::var_os("FERRY_SCREENSHOTS") {
        let shots = PathBuf::from(shots);
        let shots = if shots.is_absolute() {
            shots
        } else {
            workspace_root().join(shots)
        };
        node.env("FERRY_SCREENSHOTS", shots);
    } else {
        node.env_remove("FERRY_SCREENSHOTS");
    }
    let mut child = node.spawn().expect("spawn node dashboard.test.mjs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    print!("{out}");
    eprint!("{err}");
    let server_log = server.stderr();
    drop(server);

    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "the dashboard browser test failed ({s}):\n{}\n--- ferry serve stderr ---\n{server_log}",
            err.trim()
        ),
        None => panic!(
            "the dashboard browser test did not finish within {SCRIPT:?}; its output:\n{out}\n{err}\n\
             --- ferry serve stderr ---\n{server_log}"
        ),
    }
}
