//! The judgments of `doctor`: what one node's `INFO` and `CONFIG GET` answers mean for
//! ferry's messages. Pure functions of the answers, so every branch is unit-tested
//! without a server.
//!
//! `INFO` comes first where it says the same as `CONFIG` (eviction policy, whether AOF
//! is on): managed services often disable or rename `CONFIG` but keep `INFO`.

use std::collections::BTreeMap;

use super::{Finding, Severity};

/// The `CONFIG GET` parameters the checks read.
pub(super) const PARAMS: [&str; 4] = ["maxmemory-policy", "appendonly", "appendfsync", "save"];

/// The oldest Redis that runs ferry's scripts: they read the server clock (`TIME`) and
/// then write, which Redis before 5.0 refuses (scripts were replicated verbatim, so a
/// non-deterministic command had to come after no write, unless the script switched to
/// effects replication itself). Every other command they use is from 4.0 or older.
/// ferry's tests run on 7.0.
pub(super) const MIN_VERSION: (u32, u32) = (5, 0);

/// What one node answered. `Err` holds the server's refusal (e.g. an unknown command).
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// `INFO` as field → value.
    pub(super) info: Option<Result<BTreeMap<String, String>, String>>,
    /// `CONFIG GET` per parameter: the value, `None` when the server does not know the
    /// parameter, or the refusal.
    pub(super) config: BTreeMap<&'static str, Result<Option<String>, String>>,
}

impl Facts {
    fn info(&self, field: &str) -> Option<&str> {
        match &self.info {
            Some(Ok(map)) => map.get(field).map(String::as_str),
            _ => None,
        }
    }

    fn config(&self, param: &str) -> Result<Option<&str>, String> {
        match self.config.get(param) {
            Some(Ok(v)) => Ok(v.as_deref()),
            Some(Err(why)) => Err(why.clone()),
            None => Ok(None),
        }
    }
}

/// Parses an `INFO` reply (`field:value` lines, `# Section` headers).
pub(super) fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

const CONFIG_MISSING: &str = "CONFIG is not available";

/// Judges one node; `node` (its address) prefixes every message when given.
pub(super) fn judge(node: Option<&str>, facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |severity, check, message: String| {
        let message = match node {
            Some(n) => format!("{n}: {message}"),
            None => message,
        };
        out.push(Finding::new(severity, check, message));
    };
    match &facts.info {
        Some(Err(why)) => push(
            Severity::Warn,
            "info",
            format!("cannot check the version, role and memory: INFO is not available ({why})"),
        ),
        None => {}
        Some(Ok(_)) => {
            let (s, m) = version(facts);
            push(s, "version", m);
            let (s, m) = role(facts);
            push(s, "role", m);
            let (s, m) = memory(facts);
            push(s, "memory", m);
        }
    }
    let (s, m) = eviction(facts);
    push(s, "eviction", m);
    let (s, m) = persistence(facts);
    push(s, "persistence", m);
    out
}

fn version(f: &Facts) -> (Severity, String) {
    let Some(v) = f.info("redis_version") else {
        return (
            Severity::Warn,
            "cannot check the version: INFO has no redis_version".into(),
        );
    };
    let mode = f.info("redis_mode").unwrap_or("standalone");
    match parse_version(v) {
        Some((major, minor, _)) if (major, minor) < MIN_VERSION => (
            Severity::Error,
            format!(
                "redis {v} is older than {}.{}, the oldest that runs ferry's scripts (they read \
                 the server clock before writing, which older versions refuse); upgrade Redis",
                MIN_VERSION.0, MIN_VERSION.1
            ),
        ),
        Some(_) => (Severity::Ok, format!("redis {v} ({mode} mode)")),
        None => (
            Severity::Warn,
            format!("cannot tell the version from redis_version '{v}'"),
        ),
    }
}

fn role(f: &Facts) -> (Severity, String) {
    match f.info("role") {
        Some("master") => {
            let replicas = f.info("connected_slaves").unwrap_or("0");
            (
                Severity::Ok,
                format!("master with {replicas} connected replica(s)"),
            )
        }
        Some("slave") => {
            let at = format!(
                "{}:{}",
                f.info("master_host").unwrap_or("?"),
                f.info("master_port").unwrap_or("?")
            );
            (
                Severity::Error,
                format!(
                    "this server is a replica of {at}: ferry's writes fail here (READONLY), or \
                     with replica-read-only no are lost at the next resync; point ferry at the \
                     master, or use redis+sentinel:// so it follows failovers"
                ),
            )
        }
        Some(other) => (Severity::Warn, format!("unexpected role '{other}'")),
        None => (
            Severity::Warn,
            "cannot check the role: INFO has no role".into(),
        ),
    }
}

fn memory(f: &Facts) -> (Severity, String) {
    let used: Option<u64> = f.info("used_memory").and_then(|v| v.parse().ok());
    let max: Option<u64> = f.info("maxmemory").and_then(|v| v.parse().ok());
    let human = |field: &str, raw: Option<u64>| {
        f.info(field)
            .map(str::to_string)
            .or_else(|| raw.map(|n| n.to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let used_h = human("used_memory_human", used);
    match (used, max) {
        (Some(used), Some(max)) if max > 0 => {
            let max_h = human("maxmemory_human", Some(max));
            let pct = used.saturating_mul(100) / max;
            if pct >= 90 {
                (
                    Severity::Warn,
                    format!(
                        "used_memory {used_h} is {pct}% of maxmemory {max_h}: when it is full, \
                         sends fail (noeviction) or keys are evicted; raise maxmemory or drain \
                         the queues"
                    ),
                )
            } else {
                (
                    Severity::Ok,
                    format!("used_memory {used_h} of maxmemory {max_h} ({pct}%)"),
                )
            }
        }
        (_, Some(0)) => (
            Severity::Ok,
            format!("used_memory {used_h}, maxmemory 0 (no limit)"),
        ),
        _ => (
            Severity::Ok,
            format!("used_memory {used_h}, maxmemory unknown"),
        ),
    }
}

fn eviction(f: &Facts) -> (Severity, String) {
    let policy = match f.info("maxmemory_policy") {
        Some(p) => p.to_string(),
        None => match f.config("maxmemory-policy") {
            Ok(Some(p)) => p.to_string(),
            Ok(None) => {
                return (
                    Severity::Warn,
                    "cannot check eviction: the server reports no maxmemory-policy; make sure \
                     it is noeviction"
                        .into(),
                );
            }
            Err(why) => {
                return (
                    Severity::Warn,
                    format!(
                        "cannot check eviction: {CONFIG_MISSING} ({why}) and INFO has no \
                         maxmemory_policy; make sure maxmemory-policy is noeviction"
                    ),
                );
            }
        },
    };
    if policy == "noeviction" {
        return (
            Severity::Ok,
            "maxmemory-policy noeviction: a full Redis refuses writes instead of deleting keys"
                .into(),
        );
    }
    let fix = "run CONFIG SET maxmemory-policy noeviction (then CONFIG REWRITE, or set it in \
               redis.conf, to keep it); a full Redis then refuses new sends with an error";
    let max: Option<u64> = f.info("maxmemory").and_then(|v| v.parse().ok());
    if max == Some(0) {
        (
            Severity::Warn,
            format!(
                "maxmemory-policy is {policy}: harmless while maxmemory is 0 (no limit), but \
                 once a limit is set Redis deletes keys to make room, ferry's messages among \
                 them; {fix}"
            ),
        )
    } else {
        let limit = f
            .info("maxmemory_human")
            .map_or(String::new(), |m| format!(" with maxmemory {m}"));
        (
            Severity::Error,
            format!(
                "maxmemory-policy is {policy}{limit}: when memory fills up Redis deletes keys to \
                 make room, ferry's messages, leases and idempotency records among them (silent \
                 message loss); {fix}"
            ),
        )
    }
}

const AOF_FIX: &str = "run CONFIG SET appendonly yes and CONFIG SET appendfsync everysec (then \
                       CONFIG REWRITE, or set both in redis.conf, to keep them)";

fn persistence(f: &Facts) -> (Severity, String) {
    let aof = match f.config("appendonly") {
        Ok(Some(v)) => Some(v == "yes"),
        _ => f.info("aof_enabled").map(|v| v == "1"),
    };
    match aof {
        Some(true) => match f.config("appendfsync") {
            Ok(Some("always")) => (
                Severity::Ok,
                "AOF with appendfsync always: every write is on disk before Redis answers".into(),
            ),
            Ok(Some("everysec")) => (
                Severity::Ok,
                "AOF with appendfsync everysec: a crash of the machine loses at most about the \
                 last second of writes (a crash of Redis alone loses nothing)"
                    .into(),
            ),
            Ok(Some(other)) => (
                Severity::Warn,
                format!(
                    "AOF with appendfsync {other}: the OS writes to disk when it likes (often \
                     every 30 s), so a crash of the machine can lose that much acknowledged \
                     work; run CONFIG SET appendfsync everysec (then CONFIG REWRITE)"
                ),
            ),
            Ok(None) | Err(_) => (
                Severity::Warn,
                format!(
                    "AOF is on, but cannot check appendfsync: {CONFIG_MISSING}; make sure it is \
                     everysec or always"
                ),
            ),
        },
        Some(false) => match f.config("save") {
            Ok(Some(save)) if save.trim().is_empty() => (
                Severity::Warn,
                format!(
                    "no persistence (appendonly no, save \"\"): a restart or crash of Redis loses \
                     every message; {AOF_FIX}"
                ),
            ),
            Ok(Some(save)) => (
                Severity::Warn,
                format!(
                    "RDB snapshots only (save {save}, appendonly no): a crash loses everything \
                     written since the last snapshot; {AOF_FIX}"
                ),
            ),
            Ok(None) | Err(_) => (
                Severity::Warn,
                format!(
                    "AOF is off and cannot check RDB snapshots: {CONFIG_MISSING}; a crash loses \
                     everything since the last snapshot, or everything without snapshots; {AOF_FIX}"
                ),
            ),
        },
        None => {
            let why = f.config("appendonly").err().unwrap_or_default();
            (
                Severity::Warn,
                format!(
                    "cannot check persistence: {CONFIG_MISSING} ({why}) and INFO has no \
                     aof_enabled; make sure appendonly is yes with appendfsync everysec"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(info: &str, config: &[(&'static str, &str)]) -> Facts {
        Facts {
            info: Some(Ok(parse_info(info))),
            config: config
                .iter()
                .map(|(k, v)| (*k, Ok(Some((*v).to_string()))))
                .collect(),
        }
    }

    fn no_config(info: &str) -> Facts {
        Facts {
            info: Some(Ok(parse_info(info))),
            config: PARAMS
                .iter()
                .map(|p| (*p, Err("ERR unknown command 'CONFIG'".to_string())))
                .collect(),
        }
    }

    const HEALTHY: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\
        # Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nmaxmemory:0\r\n\
        maxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\n\
        # Persistence\r\naof_enabled:1\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";

    fn find<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} finding in {findings:?}"))
    }

    #[test]
    fn healthy_server_is_all_ok() {
        let f = judge(
            None,
            &facts(
                HEALTHY,
                &[("appendonly", "yes"), ("appendfsync", "everysec")],
            ),
        );
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:?}");
        assert_eq!(
            find(&f, "version").message,
            "redis 7.0.15 (standalone mode)"
        );
    }

    #[test]
    fn eviction_policy() {
        let info = HEALTHY
            .replace("maxmemory:0", "maxmemory:104857600")
            .replace(
                "maxmemory_policy:noeviction",
                "maxmemory_policy:allkeys-lru",
            );
        let f = judge(None, &facts(&info, &[]));
        let e = find(&f, "eviction");
        assert_eq!(e.severity, Severity::Error);
        assert!(
            e.message.contains("CONFIG SET maxmemory-policy noeviction"),
            "{e:?}"
        );
        // Without a limit nothing is evicted yet.
        let info = HEALTHY.replace(
            "maxmemory_policy:noeviction",
            "maxmemory_policy:volatile-lru",
        );
        assert_eq!(
            find(&judge(None, &facts(&info, &[])), "eviction").severity,
            Severity::Warn
        );
    }

    #[test]
    fn persistence_settings() {
        let sev = |config: &[(&'static str, &str)]| {
            find(&judge(None, &facts(HEALTHY, config)), "persistence").severity
        };
        assert_eq!(sev(&[("appendonly", "no"), ("save", "")]), Severity::Warn);
        assert_eq!(
            sev(&[("appendonly", "no"), ("save", "3600 1")]),
            Severity::Warn
        );
        assert_eq!(
            sev(&[("appendonly", "yes"), ("appendfsync", "no")]),
            Severity::Warn
        );
        assert_eq!(
            sev(&[("appendonly", "yes"), ("appendfsync", "always")]),
            Severity::Ok
        );
        let none = judge(None, &facts(HEALTHY, &[("appendonly", "no"), ("save", "")]));
        assert!(
            find(&none, "persistence")
                .message
                .contains("appendonly yes")
        );
    }

    #[test]
    fn config_disabled_warns_but_info_still_answers() {
        let f = judge(Some("10.0.0.1:6379"), &no_config(HEALTHY));
        // Eviction comes from INFO.
        assert_eq!(find(&f, "eviction").severity, Severity::Ok);
        let p = find(&f, "persistence");
        assert_eq!(p.severity, Severity::Warn);
        assert!(p.message.starts_with("10.0.0.1:6379: "), "{p:?}");
        assert!(p.message.contains("CONFIG is not available"), "{p:?}");
        // Neither INFO nor CONFIG: warnings, no failure.
        let bare = Facts {
            info: Some(Err("ERR unknown command 'INFO'".into())),
            ..no_config("")
        };
        let f = judge(None, &bare);
        assert!(f.iter().all(|f| f.severity == Severity::Warn), "{f:?}");
    }

    #[test]
    fn old_versions_and_replicas_are_errors() {
        let old = HEALTHY.replace("7.0.15", "4.0.14");
        assert_eq!(
            find(&judge(None, &facts(&old, &[])), "version").severity,
            Severity::Error
        );
        let five = HEALTHY.replace("7.0.15", "5.0.0");
        assert_eq!(
            find(&judge(None, &facts(&five, &[])), "version").severity,
            Severity::Ok
        );
        let replica = HEALTHY.replace(
            "role:master",
            "role:slave\r\nmaster_host:10.0.0.2\r\nmaster_port:6379",
        );
        let r = judge(None, &facts(&replica, &[]));
        assert_eq!(find(&r, "role").severity, Severity::Error);
        assert!(find(&r, "role").message.contains("10.0.0.2:6379"));
    }

    #[test]
    fn nearly_full_memory_warns() {
        let info = HEALTHY
            .replace("used_memory:1000", "used_memory:95")
            .replace("maxmemory:0", "maxmemory:100");
        assert_eq!(
            find(&judge(None, &facts(&info, &[])), "memory").severity,
            Severity::Warn
        );
    }
}
