//! `doctor`: server settings that put ferry's messages at risk, found before they bite.
//!
//! Redis is a cache by default: with a `maxmemory` limit and an eviction policy it
//! deletes keys to make room, and without AOF a restart forgets everything since the
//! last snapshot, or everything. Neither shows up as an error; messages just vanish. So
//! [`RedisDriver::doctor`] reads each server's `INFO` and `CONFIG GET` answers and says
//! what is wrong, what it risks and the exact fix, and the driver logs the warnings once
//! at connect ([`RedisConfig::check_settings`](crate::RedisConfig::check_settings)).
//!
//! Which servers: the one server; the current master of a Sentinel deployment; every
//! master of a Cluster (each check is reported per node). A `CONFIG` that is disabled
//! or renamed (managed services do that) turns the checks it alone can answer into
//! warnings that say so; the doctor never fails because of it.

mod checks;

use std::collections::BTreeMap;

use ferry_core::Result;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, RedisResult, Value};

use crate::RedisDriver;
use crate::connection::Conn;
use crate::reply::{Op, map_err};
use checks::{Facts, PARAMS, judge, parse_info};

/// How serious a [`Finding`] is.
///
/// ```
/// use ferry_redis::Severity;
/// assert!(Severity::Error > Severity::Warn);
/// assert_eq!(Severity::Warn.as_str(), "warn");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Fine; the finding reports a fact (version, memory, the setting that is right).
    Ok,
    /// A risk worth fixing, or a check that could not be made.
    Warn,
    /// A setting under which ferry loses messages or cannot work.
    Error,
}

impl Severity {
    /// `ok`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One result of [`RedisDriver::doctor`].
///
/// ```
/// use ferry_redis::{Finding, Severity};
/// let f = Finding::new(Severity::Warn, "persistence", "no persistence ...");
/// assert_eq!(f.to_string(), "warn persistence: no persistence ...");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// Which check, a stable name: `deployment`, `info`, `version`, `role`, `memory`,
    /// `eviction`, `persistence`.
    pub check: &'static str,
    /// What was found, what it risks and the fix; starts with `host:port: ` when the
    /// deployment has several servers.
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(severity: Severity, check: &'static str, message: impl Into<String>) -> Self {
        Finding {
            severity,
            check,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.check, self.message)
    }
}

/// Splits a reply into the server's answer, its refusal (`Ok(Err)`: unknown or
/// forbidden command), or a connection failure (`Err`).
fn answer(r: RedisResult<Value>) -> Result<std::result::Result<Value, String>> {
    match r {
        Ok(Value::ServerError(e)) => Ok(Err(e.to_string())),
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.code().is_some() => Ok(Err(e.to_string())),
        Err(e) => Err(map_err(e, Op::Read, "check the server's settings")),
    }
}

fn text(v: Value) -> std::result::Result<String, String> {
    redis::from_redis_value(v).map_err(|e| format!("unexpected reply: {e}"))
}

/// The value of `param` in a `CONFIG GET param` reply (pairs as an array or a map).
fn config_value(v: Value, param: &str) -> std::result::Result<Option<String>, String> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        other => return Err(format!("unexpected reply: {other:?}")),
    };
    for (k, v) in pairs {
        if text(k)?.eq_ignore_ascii_case(param) {
            return text(v).map(Some);
        }
    }
    Ok(None)
}

fn info_cmd() -> Cmd {
    redis::cmd("INFO")
}

fn config_cmd(param: &str) -> Cmd {
    let mut c = redis::cmd("CONFIG");
    c.arg("GET").arg(param);
    c
}

/// Asks one server (through the driver's connection).
async fn facts_of(conn: &mut Conn) -> Result<Facts> {
    let mut facts = Facts::default();
    let info: RedisResult<Value> = info_cmd().query_async(conn).await;
    facts.info = Some(answer(info)?.and_then(text).map(|t| parse_info(&t)));
    for param in PARAMS {
        let r: RedisResult<Value> = config_cmd(param).query_async(conn).await;
        let v = answer(r)?.and_then(|v| config_value(v, param));
        facts.config.insert(param, v);
    }
    Ok(facts)
}

/// Runs `cmd` on every master of a Cluster: node address → its answer.
async fn on_masters(
    c: &mut redis::cluster_async::ClusterConnection,
    cmd: Cmd,
) -> Result<BTreeMap<String, std::result::Result<Value, String>>> {
    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let reply = answer(c.route_command(cmd, routing).await)?;
    let mut out = BTreeMap::new();
    match reply {
        Ok(Value::Map(per_node)) => {
            for (node, v) in per_node {
                let node = text(node).unwrap_or_else(|e| e);
                out.insert(node, answer(Ok(v))?);
            }
        }
        Ok(other) => {
            out.insert("?".into(), Ok(other));
        }
        Err(why) => {
            out.insert("?".into(), Err(why));
        }
    }
    Ok(out)
}

/// Asks every master of a Cluster.
async fn facts_of_masters(
    c: &mut redis::cluster_async::ClusterConnection,
) -> Result<BTreeMap<String, Facts>> {
    let mut nodes: BTreeMap<String, Facts> = BTreeMap::new();
    for (node, info) in on_masters(c, info_cmd()).await? {
        nodes.entry(node).or_default().info = Some(info.and_then(text).map(|t| parse_info(&t)));
    }
    for param in PARAMS {
        for (node, v) in on_masters(c, config_cmd(param)).await? {
            let v = v.and_then(|v| config_value(v, param));
            nodes.entry(node).or_default().config.insert(param, v);
        }
    }
    Ok(nodes)
}

impl RedisDriver {
    /// Checks the server settings ferry depends on and reports one [`Finding`] per
    /// check (per master on a Cluster): the version (5.0 or later), the role (a
    /// master), memory use, the eviction policy (`noeviction`, else Redis may delete
    /// ferry's keys: [`Severity::Error`] when a `maxmemory` limit is set) and persistence
    /// (AOF with `appendfsync everysec` or `always`; RDB only or nothing is
    /// [`Severity::Warn`]). Each message says what it risks and the command that fixes it.
    ///
    /// Checks that need `CONFIG` when the server refuses it come back as warnings
    /// saying so; errors are only connection failures (`Unavailable`, `Timeout`).
    ///
    /// ```no_run
    /// # async fn demo() -> ferry_core::Result<()> {
    /// use ferry_redis::{RedisDriver, Severity};
    /// let driver = RedisDriver::connect("redis://127.0.0.1:6379").await?;
    /// for f in driver.doctor().await? {
    ///     if f.severity != Severity::Ok {
    ///         eprintln!("{f}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn doctor(&self) -> Result<Vec<Finding>> {
        match self.conn() {
            Conn::Cluster(mut c) => {
                let nodes = facts_of_masters(&mut c).await?;
                let names: Vec<&str> = nodes.keys().map(String::as_str).collect();
                let mut out = vec![Finding::new(
                    Severity::Ok,
                    "deployment",
                    format!(
                        "cluster with {} master(s), each checked: {}",
                        names.len(),
                        names.join(", ")
                    ),
                )];
                for (node, facts) in &nodes {
                    out.extend(judge(Some(node), facts));
                }
                Ok(out)
            }
            Conn::Sentinel(s) => {
                let (name, address) = s.master().await;
                let facts = facts_of(&mut self.conn()).await?;
                let mut out = vec![Finding::new(
                    Severity::Ok,
                    "deployment",
                    format!("sentinel master '{name}' at {address} (the one checked below)"),
                )];
                out.extend(judge(None, &facts));
                Ok(out)
            }
            Conn::Single(_) => Ok(judge(None, &facts_of(&mut self.conn()).await?)),
        }
    }

    /// Runs [`doctor`](Self::doctor) in the background and logs each warning and error
    /// once (`tracing::warn!`); a failure to check is logged at debug level.
    pub(crate) fn warn_about_settings(&self) {
        let driver = self.clone();
        tokio::spawn(async move {
            match driver.doctor().await {
                Ok(findings) => {
                    for f in findings.iter().filter(|f| f.severity != Severity::Ok) {
                        tracing::warn!(
                            severity = f.severity.as_str(),
                            check = f.check,
                            "redis settings: {}",
                            f.message
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot check the redis settings"),
            }
        });
    }
}
