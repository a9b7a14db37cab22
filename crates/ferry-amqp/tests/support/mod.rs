//! What the RabbitMQ driver's integration tests share: the broker's URL (the machine's
//! RabbitMQ unless `FERRY_TEST_AMQP_URL` says otherwise), the same URL through the
//! testkit's fault proxy, ledgers, and `rabbitmqctl` for the faults only the broker can
//! make (closing one connection by its name, stopping and starting the broker's app).

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

use ferry_amqp::AmqpDriver;
use ferry_core::{DeadLetterQuery, DeadLetters, QueueName};
use ferry_testkit::ledger::{Event, Ledger};

/// The vhost the tests use on the machine's broker, so what they leave behind (the
/// conformance functions do not delete their queues) is one `rabbitmqctl delete_vhost`
/// away, and never mixes with anyone's data in `/`. `.ci/run` wipes it before the tests.
pub const TEST_VHOST: &str = "ferry-test";

/// The test broker's URL: `FERRY_TEST_AMQP_URL`, else the machine's broker with
/// [`TEST_VHOST`] (created if missing).
pub fn url() -> String {
    match std::env::var("FERRY_TEST_AMQP_URL") {
        Ok(url) => url,
        Err(_) => {
            ensure_vhost(TEST_VHOST);
            format!("amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}")
        }
    }
}

/// Creates `vhost` on the machine's broker with full rights for `guest`, unless it is
/// there already (once per test process).
pub fn ensure_vhost(vhost: &str) {
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if made.iter().any(|v| v == vhost) {
        return;
    }
    let listed = rabbitmqctl(&["list_vhosts", "-q", "name"]);
    if !listed.lines().any(|l| l.trim() == vhost) {
        // Another test process may create it at the same moment: its error is fine.
        let _ = Command::new("rabbitmqctl")
            .args(["add_vhost", vhost])
            .output();
    }
    rabbitmqctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    made.push(vhost.to_string());
}

/// Deletes `vhost` with everything in it (ignoring a vhost that is not there).
pub fn delete_vhost(vhost: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["delete_vhost", vhost])
        .output();
}

/// Splits `amqp://[user:pass@]host[:port][/vhost][?query]` into (head, host:port, tail).
fn split_url(url: &str) -> (String, String, String) {
    let rest = url.strip_prefix("amqp://").expect("an amqp:// URL");
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (host, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5672")
    };
    (format!("amqp://{auth}"), host, tail.to_string())
}

/// The socket address of the test broker.
pub fn broker_addr() -> SocketAddr {
    let (_, host, _) = split_url(&url());
    host.to_socket_addrs()
        .expect("resolve the broker host")
        .next()
        .expect("an address for the broker host")
}

/// The test broker's URL with its host and port replaced by `addr` and `query` added.
pub fn url_via(addr: SocketAddr, query: &str) -> String {
    let (head, _, tail) = split_url(&url());
    let sep = if tail.contains('?') { '&' } else { '?' };
    format!("{head}{addr}{tail}{sep}{query}")
}

/// A driver on the test broker, or a panic naming the URL.
pub async fn connect() -> AmqpDriver {
    let url = url();
    AmqpDriver::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to rabbitmq at {url}: {e}"))
}

/// A fresh ledger in a temporary directory (kept alive by the returned guard).
pub fn temp_ledger(tag: &str) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::new(dir.path().join(format!("{tag}.jsonl")));
    (dir, ledger)
}

/// Writes a `fault` line.
pub fn fault(ledger: &Ledger, kind: impl Into<String>) {
    ledger
        .append(&Event::Fault { kind: kind.into() })
        .expect("ledger fault line");
}

/// The ids in `q`'s dead letters.
pub async fn dead_ids(d: &AmqpDriver, q: &QueueName) -> BTreeSet<String> {
    d.list_dead_letters(q, DeadLetterQuery::page(0, 1_000_000))
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| d.id)
        .collect()
}

/// Runs `rabbitmqctl ARGS`, panicking with its output if it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run rabbitmqctl {args:?}: {e} (is RabbitMQ installed?)"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Closes the broker-side connection whose client name is `name` (only that one: other
/// clients of the broker are not touched). Panics if there is no such connection.
pub fn close_connection(name: &str) {
    let list = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"]);
    let line = list
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no connection named {name} in:\n{list}"));
    let pid = line.split_whitespace().next().expect("a connection pid");
    rabbitmqctl(&["close_connection", pid, "ferry test closes this connection"]);
}

/// Stops the broker's application (`rabbitmqctl stop_app`); dropping the guard starts it
/// again and waits until it accepts connections, so a failing test cannot leave the
/// machine's broker stopped.
#[derive(Debug)]
pub struct Stopped(());

impl Stopped {
    /// Stops the broker app.
    pub fn now() -> Stopped {
        rabbitmqctl(&["stop_app"]);
        Stopped(())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .status();
        for _ in 0..300 {
            if std::net::TcpStream::connect_timeout(&broker_addr(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
