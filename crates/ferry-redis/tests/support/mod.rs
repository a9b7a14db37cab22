//! Local Redis deployments for tests: single servers, a 3-master Cluster and a
//! Sentinel set, started from the installed `redis-server` on free loopback ports.
//!
//! Every server runs under a small shell watchdog that SIGKILLs it once the test
//! process is gone (and removes the scratch directory), so servers held in statics (shared by a test binary's tests) or
//! left behind by a panic never outlive the run. Servers are also stopped by PID on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ferry-{tag}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `redis-server` process (plain, cluster node or sentinel).
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    child: Child,
    args: Vec<String>,
}

/// The PID file the watchdog writes for the server it runs.
fn pid_file(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.pid"))
}

impl Server {
    /// Starts `redis-server` with `args` (which must include `--port`) and waits until it
    /// answers PING.
    pub fn start(port: u16, dir: &Path, args: &[String]) -> Server {
        let child = spawn(port, dir, args);
        let s = Server {
            port,
            child,
            args: args.to_vec(),
        };
        wait_ping(port);
        s
    }

    /// Starts a TLS-only `redis-server` and waits until it answers PING over TLS.
    pub fn start_tls(port: u16, dir: &Path, args: &[String], ca: &Path) -> Server {
        let child = spawn(port, dir, args);
        let s = Server {
            port,
            child,
            args: args.to_vec(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("redis-cli")
                .args(["--tls", "--cacert"])
                .arg(ca)
                .args(["-p", &port.to_string(), "PING"])
                .output()
                .expect("redis-cli");
            if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "TLS redis-server on port {port} did not answer PING within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (no shutdown save).
    pub fn kill(&mut self) {
        kill_server(&self.args, self.port);
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_down(self.port);
    }

    /// Starts the server again with the same arguments (same port, same directory).
    pub fn restart(&mut self, dir: &Path) {
        self.child = spawn(self.port, dir, &self.args);
        wait_ping(self.port);
    }

    /// Runs `redis-cli -p PORT args…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_server(&self.args, self.port);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16, dir: &Path, args: &[String]) -> Child {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let pidf = pid_file(dir, port);
    // The watchdog: run the server in the background, kill it when the test process
    // (the watchdog's parent) is gone.
    let script = format!(
        "cd '{}' && redis-server {} & s=$!; echo $s > '{}'; \
         while kill -0 {} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; \
         kill -9 $s 2>/dev/null; kill -0 {} 2>/dev/null || rm -rf '{}'",
        dir.display(),
        quoted.join(" "),
        pidf.display(),
        std::process::id(),
        std::process::id(),
        dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (is it installed?)")
}

/// SIGKILLs the server itself (not just its watchdog), by the PID the watchdog wrote.
fn kill_server(args: &[String], port: u16) {
    let dir = args
        .windows(2)
        .find(|w| w[0] == "--dir")
        .map(|w| PathBuf::from(&w[1]));
    let Some(dir) = dir else { return };
    if let Ok(pid) = std::fs::read_to_string(pid_file(&dir, port)) {
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cli(port, &["PING"]).trim() == "PONG" {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server on port {port} did not answer PING within 20 s");
}

fn wait_down(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn base_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A plain server with extra arguments (for example `--appendonly yes`).
pub fn single(dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let mut args = base_args(port, dir);
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(port, dir, &args)
}

/// A 3-master Redis Cluster without replicas.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub dir: TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let mut args = base_args(port, dir.path());
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "5000",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            nodes.push(Server::start(port, dir.path(), &args));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = Command::new("redis-cli")
            .args(&create)
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster { nodes, dir }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

/// A master, one replica and three sentinels monitoring them as `mymaster`.
#[derive(Debug)]
pub struct SentinelSet {
    pub master: Server,
    pub replica: Server,
    pub sentinels: Vec<Server>,
    pub dir: TempDir,
}

pub const MASTER_NAME: &str = "mymaster";

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let dir = TempDir::new("sentinel");
        let master = single(dir.path(), &[]);
        let rport = free_port();
        let mut rargs = base_args(rport, dir.path());
        rargs.extend(
            ["--replicaof", "127.0.0.1", &master.port.to_string()]
                .iter()
                .map(|s| s.to_string()),
        );
        let replica = Server::start(rport, dir.path(), &rargs);
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir.path().display(),
                    master.port
                ),
            )
            .expect("sentinel conf");
            let args = vec![
                conf.display().to_string(),
                "--sentinel".to_string(),
                "--dir".to_string(),
                dir.path().display().to_string(),
            ];
            sentinels.push(Server::start(port, dir.path(), &args));
        }
        let set = SentinelSet {
            master,
            replica,
            sentinels,
            dir,
        };
        // Wait until the replica is in sync and every sentinel sees it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = set
                .replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up");
            let seen = set.sentinels.iter().all(|s| {
                s.cli(&["SENTINEL", "REPLICAS", MASTER_NAME])
                    .contains(&set.replica.port.to_string())
            });
            if synced && seen {
                break;
            }
            assert!(Instant::now() < deadline, "sentinel set never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        set
    }

    /// `redis+sentinel://127.0.0.1:S1,…/mymaster`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", addrs.join(","))
    }

    /// The port the sentinels currently name as master.
    pub fn master_port(&self) -> u16 {
        let out = self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .expect("sentinel names a master")
    }
}
