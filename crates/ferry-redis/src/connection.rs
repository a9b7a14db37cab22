//! One connection handle for every [`Deployment`], so the driver's code does not care
//! whether it talks to one server, a Sentinel-managed master or a Cluster.
//!
//! - Single: redis-rs's `ConnectionManager`, which reconnects with backoff by itself,
//!   wrapped so that calls fail fast while the server is down instead of each waiting
//!   out the whole reconnect backoff, and so that a timed-out reply replaces a
//!   connection that may be half-open (see `single.rs`).
//! - Cluster: redis-rs's cluster connection, which follows `MOVED`/`ASK` and refreshes
//!   its slot map; every script touches one queue, so one slot.
//! - Sentinel: redis-rs resolves the master through the sentinels, but its connection
//!   would keep talking to the old address after a failover (the demoted master answers
//!   `READONLY`, or nothing). So this module keeps a `Single` connection to the current
//!   master and, after a failure that a failover explains (connection lost or refused,
//!   timeout, `READONLY`), asks the sentinels again and swaps in a connection to the new
//!   master; it also asks every second, so a promotion is noticed even before anything
//!   fails. The failing call still fails (its outcome may be unknown); the next one goes
//!   to the new master.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferry_core::{Error, Result};
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionLike, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::deployment::{Deployment, redact};
use crate::reply::{Op, map_err};
use crate::single::Single;

/// Timeouts of every connection the driver opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) response: Duration,
    pub(crate) connect: Duration,
}

impl Timeouts {
    fn manager(self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response))
            .set_connection_timeout(Some(self.connect))
            .set_number_of_retries(6)
            .set_max_delay(Duration::from_secs(2))
    }
}

/// A cheap-to-clone connection to a deployment.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
            Conn::Sentinel(_) => "Conn::Sentinel",
        })
    }
}

fn bad_url(url: &str, e: RedisError) -> Error {
    Error::invalid_input(format!("'{}' is not a valid redis URL", redact(url))).with_source(e)
}

impl Conn {
    /// Opens a connection to `deployment`.
    pub(crate) async fn open(deployment: &Deployment, t: Timeouts) -> Result<Conn> {
        match deployment {
            Deployment::Single { url } => {
                let client = redis::Client::open(url.as_str()).map_err(|e| bad_url(url, e))?;
                let single = Single::connect(client, t.manager())
                    .await
                    .map_err(|e| map_err(e, Op::Read, "connect"))?;
                Ok(Conn::Single(single))
            }
            Deployment::Cluster { nodes } => {
                let client =
                    redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                        .connection_timeout(t.connect)
                        .response_timeout(t.response)
                        .retries(6)
                        .build()
                        .map_err(|e| bad_url(nodes.first().map_or("", String::as_str), e))?;
                let c = client
                    .get_async_connection()
                    .await
                    .map_err(|e| map_err(e, Op::Read, "connect to the cluster"))?;
                Ok(Conn::Cluster(c))
            }
            Deployment::Sentinel {
                sentinels,
                master_name,
                master_url_template,
            } => {
                let sentinel = Sentinel::build(sentinels.clone())
                    .map_err(|e| bad_url(sentinels.first().map_or("", String::as_str), e))?;
                let mut state = SentinelState {
                    sentinel,
                    master_name: master_name.clone(),
                    template: master_url_template.clone(),
                    timeouts: t,
                    address: String::new(),
                    checked: Instant::now(),
                };
                let cm = state.resolve().await?;
                let conn = Arc::new(SentinelConn {
                    current: RwLock::new(cm),
                    state: tokio::sync::Mutex::new(state),
                });
                tokio::spawn(watch(Arc::downgrade(&conn)));
                Ok(Conn::Sentinel(conn))
            }
        }
    }

    /// Whether keys of different queues may live on different nodes.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

/// The sentinel mode's current master connection and how to find a new one.
pub(crate) struct SentinelConn {
    current: RwLock<Arc<Single>>,
    state: tokio::sync::Mutex<SentinelState>,
}

struct SentinelState {
    sentinel: Sentinel,
    master_name: String,
    template: String,
    timeouts: Timeouts,
    /// `host:port` of the master `current` talks to.
    address: String,
    /// When the sentinels were last asked.
    checked: Instant,
}

/// Least time between two questions to the sentinels, so a burst of failures during a
/// failover does not become a burst of lookups.
const RECHECK: Duration = Duration::from_millis(250);

impl SentinelState {
    /// Asks the sentinels for the master and connects to it.
    async fn resolve(&mut self) -> Result<Arc<Single>> {
        self.checked = Instant::now();
        let address = self.master_address().await?;
        let url = self.template.replace("HOST", &address);
        let client = redis::Client::open(url.as_str()).map_err(|e| bad_url(&url, e))?;
        let cm = Single::connect(client, self.timeouts.manager())
            .await
            .map_err(|e| map_err(e, Op::Read, "connect to the master the sentinels named"))?;
        self.address = address;
        Ok(cm)
    }

    /// How the sentinel client checks the master it finds: with the master's
    /// credentials, database and TLS mode (taken from the URL template).
    fn node_info(&self) -> Result<SentinelNodeConnectionInfo> {
        let probe = self.template.replace("HOST", "localhost:6379");
        let info = probe
            .as_str()
            .into_connection_info()
            .map_err(|e| bad_url(&self.template, e))?;
        let mut node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(info.redis_settings().clone());
        if self.template.starts_with("rediss://") {
            node = node.set_tls_mode(redis::TlsMode::Secure);
        }
        Ok(node)
    }

    async fn master_address(&mut self) -> Result<String> {
        let node = self.node_info()?;
        let client = self
            .sentinel
            .async_master_for(&self.master_name, Some(&node))
            .await
            .map_err(|e| {
                map_err(
                    e,
                    Op::Read,
                    &format!("find master '{}' through the sentinels", self.master_name),
                )
            })?;
        Ok(client.get_connection_info().addr().to_string())
    }
}

impl SentinelConn {
    /// The master's name and the `host:port` this connection talks to (for reports).
    pub(crate) async fn master(&self) -> (String, String) {
        let state = self.state.lock().await;
        (state.master_name.clone(), state.address.clone())
    }

    fn current(&self) -> Arc<Single> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After a failure a failover explains: if the sentinels now name another master,
    /// connect to it. Errors are ignored (the next failure tries again).
    async fn recheck(&self) {
        let Ok(mut state) = self.state.try_lock() else {
            return; // another task is already asking
        };
        if state.checked.elapsed() < RECHECK {
            return;
        }
        state.checked = Instant::now();
        let Ok(address) = state.master_address().await else {
            return;
        };
        if address == state.address {
            return;
        }
        if let Ok(cm) = state.resolve().await {
            match self.current.write() {
                Ok(mut g) => *g = cm,
                Err(poisoned) => *poisoned.into_inner() = cm,
            }
        }
    }
}

/// How often the sentinels are asked for the master even when nothing failed: a
/// promoted replica is used within about this long, which bounds the time the driver
/// keeps writing to a demoted master that still accepts writes (those writes are lost
/// when it resyncs as a replica).
const WATCH: Duration = Duration::from_secs(1);

/// Asks the sentinels every [`WATCH`] until the connection is dropped.
async fn watch(conn: std::sync::Weak<SentinelConn>) {
    loop {
        tokio::time::sleep(WATCH).await;
        let Some(conn) = conn.upgrade() else { return };
        conn.recheck().await;
    }
}

/// Failures after which the sentinels may name another master.
fn failover_suspect(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.code() == Some("READONLY")
        || e.code() == Some("MASTERDOWN")
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(s) => Box::pin(async move { s.query(cmd).await }),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => Box::pin(async move {
                let r = s.current().query(cmd).await;
                if let Err(e) = &r
                    && failover_suspect(e)
                {
                    s.recheck().await;
                }
                r
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(s) => Box::pin(async move { s.query_pipeline(cmd, offset, count).await }),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(s) => Box::pin(async move {
                let r = s.current().query_pipeline(cmd, offset, count).await;
                if let Err(e) = &r
                    && failover_suspect(e)
                {
                    s.recheck().await;
                }
                r
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(s) => s.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(s) => s.current().get_db(),
        }
    }
}
