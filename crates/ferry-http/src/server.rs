//! The state every handler shares, and the background sampler.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::Driver;
use governor::{Quota, RateLimiter, clock::DefaultClock, state::keyed::HashMapStateStore};

use crate::alerts::Alerts;
use crate::audit::{AuditLog, AuditRecord};
use crate::auth::{Auth, Principal};
use crate::config::ServerConfig;
use crate::consumers::Consumers;
use crate::metrics::Metrics;
use crate::sample::{Series, point};

type Limiter = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>;

/// Everything the routes need: the backend, settings, authentication, audit log,
/// metrics, samples, consumers and alerts. Build one with [`Server::builder`] and turn
/// it into routes with [`crate::router`].
///
/// ```
/// use std::sync::Arc;
/// use ferry_http::{Server, ServerConfig};
/// let driver = Arc::new(ferry_core::MemoryDriver::new());
/// let server = Server::builder(driver).config(ServerConfig::default()).build()?;
/// let _app: axum::Router = ferry_http::router(server);
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub struct Server {
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) config: ServerConfig,
    pub(crate) auth: Auth,
    pub(crate) audit: AuditLog,
    pub(crate) metrics: Metrics,
    pub(crate) series: Series,
    pub(crate) consumers: Consumers,
    pub(crate) alerts: Option<Alerts>,
    pub(crate) requests: Option<Limiter>,
    pub(crate) auth_failures: Option<crate::throttle::AuthThrottle>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("driver", &self.driver)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Server`].
#[derive(Debug)]
pub struct ServerBuilder {
    driver: Arc<dyn Driver>,
    config: ServerConfig,
    audit: Option<AuditLog>,
    alerts: Option<Alerts>,
}

impl ServerBuilder {
    /// The settings (default: [`ServerConfig::default`]).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The audit log (default: in memory).
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Alert rules and webhooks (default: none).
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Checks the settings and builds the server.
    pub fn build(self) -> ferry_core::Result<Arc<Server>> {
        let config = self.config;
        for t in &config.tokens {
            t.validate()?;
        }
        let mut names: Vec<&str> = config.tokens.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ferry_core::Error::invalid_input(format!(
                "two tokens are named '{}'; names tell the audit log who did what, so they must differ",
                w[0]
            )));
        }
        if config.max_body_bytes < 1024 {
            return Err(ferry_core::Error::invalid_input(
                "the request body limit must be at least 1 KiB",
            ));
        }
        let requests = std::num::NonZeroU32::new(config.rate_limit_per_second).map(|n| {
            let burst = n.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
            RateLimiter::hashmap(Quota::per_second(n).allow_burst(burst))
        });
        let auth_failures = (config.auth_failures_per_minute > 0)
            .then(|| crate::throttle::AuthThrottle::new(config.auth_failures_per_minute));
        Ok(Arc::new(Server {
            driver: self.driver,
            auth: Auth::new(config.tokens.clone(), config.session_ttl),
            series: Series::new(config.samples_kept),
            config,
            audit: self.audit.unwrap_or_else(AuditLog::memory),
            metrics: Metrics::new(),
            consumers: Consumers::default(),
            alerts: self.alerts,
            requests,
            auth_failures,
        }))
    }
}

impl Server {
    /// Starts building a server over `driver`.
    pub fn builder(driver: Arc<dyn Driver>) -> ServerBuilder {
        ServerBuilder {
            driver,
            config: ServerConfig::default(),
            audit: None,
            alerts: None,
        }
    }

    /// The backend.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The metrics, for consumers run next to the server.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The registry of this process's consumers.
    pub fn consumers(&self) -> &Consumers {
        &self.consumers
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Writes an audit entry for `who`; a failure is logged and counted, never returned
    /// (the change it describes has already happened).
    pub(crate) async fn audit_change(
        &self,
        who: &Principal,
        remote: Option<String>,
        action: &str,
        target: String,
        count: u64,
        detail: Option<String>,
    ) {
        let record = AuditRecord {
            actor: who.actor.clone(),
            role: who.role.as_str().to_string(),
            action: action.to_string(),
            target,
            count,
            detail,
            remote,
        };
        if let Err(e) = self.audit.record(record).await {
            self.metrics.audit_write_failed();
            tracing::error!("audit entry for {action} not written: {e}");
        }
    }

    /// Takes one sample now: stats into the series, the metrics and the alert rules.
    pub async fn sample_once(&self) {
        let now = SystemTime::now();
        let stats = tokio::time::timeout(Duration::from_secs(10), self.driver.stats(None)).await;
        let stats = match stats {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                tracing::warn!("sampling queue stats failed: {e}");
                self.metrics.set_depths(None, now);
                return;
            }
            Err(_) => {
                tracing::warn!("sampling queue stats timed out after 10s");
                self.metrics.set_depths(None, now);
                return;
            }
        };
        self.metrics.set_depths(Some(&stats), now);
        for c in self.consumers.all() {
            let view = c.view();
            let state = c
                .breaker()
                .map_or(ferry_core::consumer::BreakerState::Closed, |b| b.state());
            self.metrics
                .consumer(&view.name, &view.queue, view.in_flight, state);
        }
        let p = point(now, &stats, |q| self.metrics.totals(q));
        if let Some(alerts) = &self.alerts {
            alerts.observe(&crate::alerts_input::sample(&p)).await;
        }
        self.series.push(p);
        if let Some(l) = &self.requests {
            l.retain_recent();
        }
        if let Some(t) = &self.auth_failures {
            t.prune();
        }
    }

    /// Samples every `sample_interval` until the returned task is aborted or dropped
    /// with the runtime.
    pub fn spawn_sampler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(server.config.sample_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                server.sample_once().await;
            }
        })
    }
}
