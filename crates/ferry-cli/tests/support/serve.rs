//! A `ferry serve` child process for end-to-end tests: started from a prepared
//! command, its address read from the `listening on http://...` line, its stderr kept
//! for failure messages, killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// `ferry --backend file:DATA` run beside `data`, with every `FERRY_*` variable of the
/// developer's environment removed, so no local token, backend or ferry.toml leaks in.
/// Add `serve ...` and the test's own options.
pub fn command(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.current_dir(data.parent().unwrap_or(data));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--backend").arg(format!("file:{}", data.display()));
    cmd
}

/// How long `ferry serve` may take to print its address.
pub const STARTUP: Duration = Duration::from_secs(60);

/// The running server; killed when dropped, so a failed assertion never leaves it behind.
pub struct Served {
    pub child: Child,
    /// `http://HOST:PORT`.
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Spawns `cmd` (a `ferry ... serve` command line) and waits for its address.
    pub fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let log = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string();
                    let _ = tx.send(url);
                }
                let mut log = log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
        });
        // Drain stdout so the server never blocks on a full pipe.
        let mut out = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let mut server = Served {
            child,
            url: String::new(),
            stderr,
        };
        match rx.recv_timeout(STARTUP) {
            Ok(url) => server.url = url,
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "ferry serve printed no `listening on http://...` line within {STARTUP:?} \
                     (exit status: {status:?}); its stderr:\n{}",
                    server.stderr()
                );
            }
        }
        server
    }

    /// `HOST:PORT`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
