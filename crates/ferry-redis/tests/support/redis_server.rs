//! A throwaway `redis-server` child process with an append-only file, for restart tests.
//!
//! The guard kills the server on drop, so a failing (panicking) test leaves no server
//! behind; the data directory is a temporary directory removed with the guard.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` on a free loopback port, persisting every write (`appendfsync always`).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port with a fresh data directory and waits until it
    /// answers.
    pub async fn start() -> RedisServer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir for the redis data");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.spawn().await;
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILLs the server (no shutdown, no final write: only what was fsynced survives).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (it replays the
    /// append-only file) and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(server_args(self.port, self.dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server (is it installed?)");
        self.child = Some(child);
        let url = self.url();
        ferry_testkit::eventually(Duration::from_secs(20), "redis-server answers", || {
            let url = url.clone();
            async move { ping(&url).await.then_some(()) }
        })
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        &dir.display().to_string(),
        "--daemonize",
        "no",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// A port nobody listens on right now (the tiny race with other processes is accepted).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether the server answers PING with its data loaded (a loading server answers
/// `LOADING`, which is an error here).
async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}
