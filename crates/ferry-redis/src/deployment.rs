//! Where Redis is: one server, a master found through Sentinel, or a Cluster.
//!
//! A [`Deployment`] comes from a URL (`redis://`, `rediss://`, `redis+sentinel://`,
//! `redis+cluster://`) or from the environment variables of the Redis Streams tool ferry
//! replaces (`REDIS_MODE`, `REDIS_ADDRS`, `REDIS_MASTER_NAME`, `REDIS_PASSWORD`), so its
//! users keep their deployment files. The multi-host URLs are parsed by hand because no
//! URL crate accepts a comma-separated host list.

use ferry_core::{Error, Result};

/// How to reach Redis.
///
/// ```
/// use ferry_redis::Deployment;
/// let d = Deployment::parse("redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2:26379/mymaster").unwrap();
/// assert_eq!(d, Deployment::Sentinel {
///     sentinels: vec!["redis://10.0.0.1:26379".into(), "redis://10.0.0.2:26379".into()],
///     master_name: "mymaster".into(),
///     master_url_template: "redis://:secret@HOST/0".into(),
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deployment {
    /// One server (`redis://` or `rediss://` with TLS), reconnected after failures.
    Single {
        /// The server's URL.
        url: String,
    },
    /// A master found through Sentinel and found again after a failover.
    Sentinel {
        /// The sentinels' URLs (`redis://host:port`).
        sentinels: Vec<String>,
        /// The monitored master's name.
        master_name: String,
        /// The master's URL with `HOST` standing for `host:port` (carries scheme,
        /// credentials and database).
        master_url_template: String,
    },
    /// A Redis Cluster, reached through any of its nodes.
    Cluster {
        /// Seed nodes' URLs (with credentials).
        nodes: Vec<String>,
    },
}

/// The parts of `scheme://[userinfo@]hosts[/path]`.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
}

fn split(url: &str) -> Result<Parts<'_>> {
    let bad = |why: &str| {
        Error::invalid_input(format!("'{}' is not a valid redis URL: {why}", redact(url)))
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hostlist.split(',').filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Parts {
        scheme,
        userinfo,
        hosts,
        path,
    })
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

fn with_port(host: &str, default: u16) -> String {
    let has_port = if host.starts_with('[') {
        host.contains("]:")
    } else {
        host.matches(':').count() == 1
    };
    if has_port {
        host.to_string()
    } else {
        format!("{host}:{default}")
    }
}

impl Deployment {
    /// Parses a URL:
    ///
    /// - `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS);
    /// - `redis+sentinel://[user:password@]host:port[,host:port…]/master_name[/db]`
    ///   (`rediss+sentinel://` for TLS to the master); the credentials are the master's,
    ///   the sentinels are reached without any;
    /// - `redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://`).
    pub fn parse(url: &str) -> Result<Deployment> {
        let url = url.trim();
        let p = split(url)?;
        let auth = p.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        match p.scheme {
            "redis" | "rediss" => {
                if p.hosts.len() > 1 {
                    return Err(Error::invalid_input(format!(
                        "'{}' names several hosts: use redis+sentinel:// or redis+cluster://",
                        redact(url)
                    )));
                }
                Ok(Deployment::Single {
                    url: url.to_string(),
                })
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let tls = p.scheme.starts_with("rediss");
                let mut segs = p.path.split('/').filter(|s| !s.is_empty());
                let master_name = segs.next().ok_or_else(|| {
                    Error::invalid_input(format!(
                        "'{}' has no master name: write redis+sentinel://HOST:PORT[,HOST:PORT]/MASTER_NAME",
                        redact(url)
                    ))
                })?;
                let db = segs.next().unwrap_or("0");
                if db.parse::<u32>().is_err() {
                    return Err(Error::invalid_input(format!(
                        "'{}': the database after the master name must be a number, not '{db}'",
                        redact(url)
                    )));
                }
                let scheme = if tls { "rediss" } else { "redis" };
                Ok(Deployment::Sentinel {
                    sentinels: p
                        .hosts
                        .iter()
                        .map(|h| format!("redis://{}", with_port(h, 26379)))
                        .collect(),
                    master_name: master_name.to_string(),
                    master_url_template: format!("{scheme}://{auth}HOST/{db}"),
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                let scheme = if p.scheme.starts_with("rediss") {
                    "rediss"
                } else {
                    "redis"
                };
                Ok(Deployment::Cluster {
                    nodes: p
                        .hosts
                        .iter()
                        .map(|h| format!("{scheme}://{auth}{}", with_port(h, 6379)))
                        .collect(),
                })
            }
            other => Err(Error::invalid_input(format!(
                "'{other}://' is not a redis scheme: use redis://, rediss://, redis+sentinel:// or redis+cluster://"
            ))),
        }
    }

    /// The deployment the environment describes, if `REDIS_ADDRS` or `REDIS_MODE` is set:
    /// `REDIS_MODE` `single` (default) | `sentinel` | `cluster`, `REDIS_ADDRS`
    /// (`host:port[,host:port…]`, default `127.0.0.1:6379`), `REDIS_MASTER_NAME`
    /// (required for `sentinel`), `REDIS_PASSWORD` (optional).
    pub fn from_env() -> Option<Result<Deployment>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Deployment::from_env`] over any variable source (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Result<Deployment>> {
        Self::url_from_vars(var).map(|u| u.and_then(|u| Self::parse(&u)))
    }

    /// The URL the `REDIS_*` variables describe (see [`Deployment::from_env`]), if they
    /// are set; the password is percent-encoded into it.
    ///
    /// ```
    /// let url = ferry_redis::Deployment::url_from_vars(|k| match k {
    ///     "REDIS_MODE" => Some("cluster".into()),
    ///     "REDIS_ADDRS" => Some("10.0.0.1:7000,10.0.0.2:7000".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(url.unwrap().unwrap(), "redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
    /// ```
    pub fn url_from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Result<String>> {
        let mode = var("REDIS_MODE").filter(|s| !s.trim().is_empty());
        let addrs = var("REDIS_ADDRS").filter(|s| !s.trim().is_empty());
        if mode.is_none() && addrs.is_none() {
            return None;
        }
        Some(Self::build_url(&var, mode, addrs))
    }

    fn build_url(
        var: &impl Fn(&str) -> Option<String>,
        mode: Option<String>,
        addrs: Option<String>,
    ) -> Result<String> {
        let addrs = addrs.unwrap_or_else(|| "127.0.0.1:6379".to_string());
        let addrs: Vec<&str> = addrs
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let auth = var("REDIS_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(|p| format!(":{}@", percent_encode(&p)))
            .unwrap_or_default();
        let mode = mode.unwrap_or_else(|| "single".to_string());
        match mode.trim().to_ascii_lowercase().as_str() {
            "single" | "standalone" => match addrs.as_slice() {
                [one] => Ok(format!("redis://{auth}{one}")),
                _ => Err(Error::invalid_input(format!(
                    "REDIS_MODE=single takes one address in REDIS_ADDRS, not {}",
                    addrs.len()
                ))),
            },
            "sentinel" => {
                let name = var("REDIS_MASTER_NAME")
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        Error::invalid_input(
                            "REDIS_MODE=sentinel needs REDIS_MASTER_NAME (the name the sentinels monitor)",
                        )
                    })?;
                Ok(format!(
                    "redis+sentinel://{auth}{}/{}",
                    addrs.join(","),
                    name.trim()
                ))
            }
            "cluster" => Ok(format!("redis+cluster://{auth}{}", addrs.join(","))),
            other => Err(Error::invalid_input(format!(
                "REDIS_MODE must be single, sentinel or cluster, not '{other}'"
            ))),
        }
    }

    /// Whether this is a Cluster (publish across slots is then atomic per queue only).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Deployment::Cluster { .. })
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Deployment::parse("redis://127.0.0.1:6379/2").expect("single"),
            Deployment::Single {
                url: "redis://127.0.0.1:6379/2".into()
            }
        );
        assert_eq!(
            Deployment::parse("redis+cluster://a:1,b").expect("cluster"),
            Deployment::Cluster {
                nodes: vec!["redis://a:1".into(), "redis://b:6379".into()]
            }
        );
        assert_eq!(
            Deployment::parse("rediss+sentinel://u:p@s1,s2:5000/m/3").expect("sentinel"),
            Deployment::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:5000".into()],
                master_name: "m".into(),
                master_url_template: "rediss://u:p@HOST/3".into(),
            }
        );
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        for (url, needle) in [
            ("redis+sentinel://a:1", "master name"),
            ("redis://a:1,b:2", "redis+cluster"),
            ("http://a", "not a redis scheme"),
            ("redis://", "no host"),
            ("redis+sentinel://a/m/x", "must be a number"),
        ] {
            let e = Deployment::parse(url).expect_err(url);
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = Deployment::parse("redis://u:hunter2@a:1,b:2").expect_err("two hosts");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
    }

    #[test]
    fn environment_of_the_streams_tool() {
        assert!(Deployment::from_vars(vars(&[])).is_none());
        let d = Deployment::from_vars(vars(&[
            ("REDIS_MODE", "sentinel"),
            ("REDIS_ADDRS", "h1:26379, h2:26379"),
            ("REDIS_MASTER_NAME", "mymaster"),
            ("REDIS_PASSWORD", "p@ss:word"),
        ]))
        .expect("set")
        .expect("valid");
        assert_eq!(
            d,
            Deployment::Sentinel {
                sentinels: vec!["redis://h1:26379".into(), "redis://h2:26379".into()],
                master_name: "mymaster".into(),
                master_url_template: "redis://:p%40ss%3Aword@HOST/0".into(),
            }
        );
        let d = Deployment::from_vars(vars(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_ADDRS", "a:1,b:2"),
        ]))
        .expect("set")
        .expect("valid");
        assert!(d.is_cluster());
        let d = Deployment::from_vars(vars(&[("REDIS_ADDRS", "a:7000")]))
            .expect("set")
            .expect("valid");
        assert_eq!(
            d,
            Deployment::Single {
                url: "redis://a:7000".into()
            }
        );
        let e = Deployment::from_vars(vars(&[("REDIS_MODE", "sentinel")]))
            .expect("set")
            .expect_err("no master name");
        assert!(e.to_string().contains("REDIS_MASTER_NAME"), "{e}");
        let e = Deployment::from_vars(vars(&[("REDIS_MODE", "ring")]))
            .expect("set")
            .expect_err("bad mode");
        assert!(e.to_string().contains("single, sentinel or cluster"), "{e}");
    }
}
