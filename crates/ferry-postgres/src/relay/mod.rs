//! [`Relay`]: forwards committed [`Outbox`](crate::Outbox) rows to any backend.
//!
//! Why it looks like this:
//! - **No cursor.** A relay that remembers "forwarded up to seq 41" skips row 40 when
//!   the transaction that took seq 40 commits after the one that took 41. Each round
//!   here takes the lowest rows present (`ORDER BY seq LIMIT n FOR UPDATE SKIP
//!   LOCKED`), forwards them, deletes exactly those, and commits, in one transaction
//!   (`round.rs`); a late commit is simply the lowest row next round.
//! - **Crash-safe, duplicates only by id.** A relay killed at any point before its
//!   commit leaves every row of the round in place; the next round forwards them again
//!   under the same message ids, which the target drops while the first copy is still
//!   queued (a copy already consumed is delivered again: at least once).
//! - **One leader per schema** (`leader.rs`): only the relay holding a session-level
//!   advisory lock forwards, so several relays can run for availability without
//!   reordering a queue; the others stand by and take over within a poll interval of
//!   the leader's connection dying.
//! - **A refused row does not block the others.** A permanent target error (no such
//!   queue, unroutable publish, too large for the target) puts that destination on
//!   hold: its rows stay, in order, and are retried with backoff, logged at ERROR and
//!   counted in the [`RoundReport`]; other destinations go on. Transient errors of the
//!   source or the target are logged, backed off and retried.
//! - **Woken by commits**: `LISTEN` on the channel the outbox `NOTIFY`s (`wake.rs`), plus
//!   a poll every [`RelayBuilder::every`].
//!
//! Order: rows of one destination are forwarded in `seq` order, which is the order of
//! their transactions' inserts; rows of two transactions that ran at the same time have
//! no order between them to keep.

mod builder;
mod leader;
mod round;
mod wake;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Driver, Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, Notify};

use crate::config::{DEFAULT_SCHEMA, PostgresConfig, redact};
pub use builder::RelayBuilder;
use builder::exponential;
use leader::{Role, Session};

/// Something the relay did, for [`RelayBuilder::on_event`] (the `ferry relay` command
/// prints them).
#[derive(Debug)]
#[non_exhaustive]
pub enum RelayEvent<'a> {
    /// This relay took the lock and forwards from now on.
    Leading,
    /// Another relay holds the lock; this one waits (reported once per change).
    StandingBy,
    /// A round ran (reported when it found rows).
    Round(&'a RoundReport),
    /// A failure the relay backs off from and retries: the database (`source: true`)
    /// or the target.
    Error {
        /// The error.
        error: &'a Error,
        /// Whether it came from PostgreSQL (else from the target).
        source: bool,
        /// How long the relay waits before the next try.
        retry_in: Duration,
    },
}

/// A row the target refused with a permanent error; it stays in the outbox.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refusal {
    /// The row's `seq`.
    pub seq: i64,
    /// The message id.
    pub id: String,
    /// The destination, in words (`queue orders`, `topic shop (route key a.b)`).
    pub destination: String,
    /// Failures of this destination in a row, this one included.
    pub failures: u32,
    /// When the destination is tried again.
    pub retry_in: Duration,
    /// What the target said.
    pub error: Error,
}

/// What one round did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RoundReport {
    /// Rows taken from the outbox.
    pub fetched: u64,
    /// Rows the target accepted (and the round deleted).
    pub forwarded: u64,
    /// Of those, messages the target already held (re-forwarded after a crash).
    pub duplicates: u64,
    /// Rows kept because their destination refused (this round or an earlier row).
    pub held: u64,
    /// The refusals, one per destination put on hold.
    pub refusals: Vec<Refusal>,
    /// A transient target failure that ended the round early (rows after it stay).
    pub target_error: Option<Error>,
    /// How long the round took.
    pub elapsed: Duration,
}

/// Totals of a [`Relay::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// Rounds that found rows.
    pub rounds: u64,
    /// Rows forwarded and deleted.
    pub forwarded: u64,
    /// Forwarded messages the target already held.
    pub duplicates: u64,
    /// Refusals (a destination put on hold, or kept on hold, by a permanent error).
    pub refused: u64,
    /// Transient failures of PostgreSQL.
    pub source_errors: u64,
    /// Transient failures of the target.
    pub target_errors: u64,
    /// Times this relay became the leader.
    pub leaderships: u64,
}

impl RelayReport {
    fn add(&mut self, r: &RoundReport) {
        self.rounds += 1;
        self.forwarded += r.forwarded;
        self.duplicates += r.duplicates;
        self.refused += r.refusals.len() as u64;
        self.target_errors += u64::from(r.target_error.is_some());
    }
}

/// Forwards committed outbox rows of one schema to a target backend; see the module
/// docs for the algorithm and its guarantees.
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ferry_postgres::Relay;
///
/// let target = Arc::new(ferry_embedded::EmbeddedDriver::open("./ferry-data")?);
/// let relay = Relay::builder("postgres://postgres@127.0.0.1:5432/shop?schema=ferry", target)?
///     .batch(200)
///     .every(Duration::from_millis(500))
///     .build();
/// let report = relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// println!("forwarded {}", report.forwarded);
/// # Ok(()) }
/// ```
pub struct Relay {
    config: RelayBuilder,
    key: i64,
    session: Mutex<Session>,
    migrated: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay reading the outbox of the database at `url` (`postgres://…`, schema from
    /// `?schema=NAME`, default `ferry`) and forwarding to `target`.
    ///
    /// ```
    /// # fn demo(target: std::sync::Arc<dyn ferry_core::Driver>) -> ferry_core::Result<()> {
    /// let relay = ferry_postgres::Relay::builder("postgres://h/db?schema=shop", target)?.build();
    /// assert_eq!(relay.schema(), "shop");
    /// # Ok(()) }
    /// ```
    pub fn builder(url: &str, target: Arc<dyn Driver>) -> Result<RelayBuilder> {
        let config = PostgresConfig::new(url)?;
        let shown = redact(config.url());
        let options = PgConnectOptions::from_str(config.url()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("'{shown}' is not a valid PostgreSQL URL"),
            )
            .with_source(e)
        })?;
        Ok(Self::with_options(options, shown, config.schema(), target))
    }

    /// A relay reading the outbox of schema `ferry` through `pool`'s connection
    /// settings (it opens its own connections: one for the rounds and the lock, one to
    /// listen); change the schema with [`RelayBuilder::schema`].
    pub fn builder_with_pool(pool: &PgPool, target: Arc<dyn Driver>) -> RelayBuilder {
        let options = (*pool.connect_options()).clone();
        Self::with_options(
            options,
            "the pool's database".into(),
            DEFAULT_SCHEMA,
            target,
        )
    }

    fn with_options(
        options: PgConnectOptions,
        shown: String,
        schema: &str,
        target: Arc<dyn Driver>,
    ) -> RelayBuilder {
        RelayBuilder {
            options,
            shown,
            schema: schema.to_string(),
            target,
            batch: 100,
            every: Duration::from_secs(1),
            listen: true,
            timeout: Duration::from_secs(10),
            target_timeout: Duration::from_secs(30),
            hold_backoff: exponential(Duration::from_secs(1), Duration::from_secs(60), false),
            backoff: exponential(Duration::from_millis(100), Duration::from_secs(5), true),
            observer: None,
        }
    }

    /// The schema whose outbox this relay reads.
    pub fn schema(&self) -> &str {
        &self.config.schema
    }

    /// One round, if this relay is (or now becomes) the leader: the number of rows
    /// forwarded, 0 when another relay leads. Runs the migrations the first time.
    /// Errors: PostgreSQL failures (transient ones are worth retrying); a transient
    /// target failure after the rows before it were forwarded.
    ///
    /// ```no_run
    /// # async fn demo(relay: ferry_postgres::Relay) -> ferry_core::Result<()> {
    /// while relay.run_once().await? > 0 {}
    /// # Ok(()) }
    /// ```
    pub async fn run_once(&self) -> Result<u64> {
        let mut session = self.session.lock().await;
        match self.step(&mut session).await?.1 {
            Step::Standby => Ok(0),
            Step::Round(r) => match r.target_error {
                Some(e) => Err(e),
                None => Ok(r.forwarded),
            },
        }
    }

    /// Runs rounds until `shutdown` completes: right away while rounds come back full,
    /// else on a notification or every [`RelayBuilder::every`]; standing by while
    /// another relay leads. Transient errors are logged and retried with backoff; it
    /// returns `Err` only for what retrying cannot fix (bad credentials, a schema a
    /// newer ferry upgraded, ...). On shutdown it finishes the current round and
    /// releases the lock.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<RelayReport> {
        let mut shutdown = std::pin::pin!(shutdown);
        let wake = Arc::new(Notify::new());
        let _listener = self.config.listen.then(|| {
            wake::start(
                &self.config.options,
                crate::outbox::channel(&self.config.schema),
                wake.clone(),
            )
        });
        let mut session = self.session.lock().await;
        let mut report = RelayReport::default();
        let (mut failures, mut standing_by) = (0u32, false);
        loop {
            let pause = match self.step(&mut session).await {
                Ok((took_lead, step)) => {
                    report.leaderships += u64::from(took_lead);
                    if took_lead {
                        standing_by = false;
                    }
                    match step {
                        Step::Standby => {
                            if !standing_by {
                                standing_by = true;
                                tracing::info!(schema = %self.config.schema, "another outbox relay leads; standing by");
                                self.emit(&RelayEvent::StandingBy);
                            }
                            failures = 0;
                            self.config.every
                        }
                        Step::Round(r) => self.after_round(&mut report, &r, &mut failures),
                    }
                }
                Err(e) if retryable(&e) => {
                    session.drop_connection();
                    standing_by = false;
                    report.source_errors += 1;
                    failures = failures.saturating_add(1);
                    let retry_in = self.delay(failures);
                    tracing::warn!(error = %e, ?retry_in, "outbox relay: PostgreSQL failed; retrying");
                    self.emit(&RelayEvent::Error {
                        error: &e,
                        source: true,
                        retry_in,
                    });
                    retry_in
                }
                Err(e) => {
                    session.release().await;
                    return Err(e);
                }
            };
            let leading = session.leader_conn().is_some();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = wake.notified(), if leading && failures == 0 => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        session.release().await;
        Ok(report)
    }

    /// Counts and reports a round; returns how long to wait before the next.
    fn after_round(
        &self,
        report: &mut RelayReport,
        r: &RoundReport,
        failures: &mut u32,
    ) -> Duration {
        if r.fetched > 0 {
            report.add(r);
            self.emit(&RelayEvent::Round(r));
        }
        match &r.target_error {
            Some(e) => {
                *failures = failures.saturating_add(1);
                let retry_in = self.delay(*failures);
                tracing::warn!(error = %e, ?retry_in, "outbox relay: the target failed; retrying");
                self.emit(&RelayEvent::Error {
                    error: e,
                    source: false,
                    retry_in,
                });
                retry_in
            }
            None => {
                *failures = 0;
                if r.forwarded > 0 && r.fetched >= self.config.batch as u64 {
                    Duration::ZERO // more may be waiting
                } else {
                    self.config.every
                }
            }
        }
    }

    /// Takes the lock if free, migrates once, and runs a round when leading; says
    /// whether this call took the lock.
    async fn step(&self, session: &mut Session) -> Result<(bool, Step)> {
        let c = &self.config;
        let role = session.ensure(&c.options, self.key, c.timeout).await?;
        let took_lead = role == Role::Leader { new: true };
        if took_lead {
            tracing::info!(schema = %c.schema, source = %c.shown, "this outbox relay leads");
            self.emit(&RelayEvent::Leading);
        }
        if !self.migrated.load(std::sync::atomic::Ordering::Relaxed) {
            self.migrate().await?;
            self.migrated
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(conn) = session.leader_conn() else {
            return Ok((took_lead, Step::Standby));
        };
        let plan = round::Plan {
            schema: &c.schema,
            target: &c.target,
            batch: c.batch,
            timeout: c.timeout,
            target_timeout: c.target_timeout,
            hold_backoff: &c.hold_backoff,
        };
        match round::run(conn, &plan).await {
            Ok(r) => Ok((took_lead, Step::Round(r))),
            Err(e) => {
                session.drop_connection();
                Err(e)
            }
        }
    }

    /// Creates or upgrades the schema (the driver's migrations) on a connection of its own.
    async fn migrate(&self) -> Result<()> {
        let c = &self.config;
        let options = c
            .options
            .clone()
            .options([("search_path", c.schema.as_str())]);
        let conn = leader::bounded(c.timeout, PgConnection::connect_with(&options))
            .await?
            .map_err(|e| {
                crate::error::from_sqlx(&format!("cannot connect to PostgreSQL at {}", c.shown), e)
            })?;
        leader::bounded(
            c.timeout.max(Duration::from_secs(60)),
            crate::migrate::run(conn, &c.schema),
        )
        .await?
    }

    fn delay(&self, failures: u32) -> Duration {
        self.config
            .backoff
            .delay_after(failures, u32::MAX)
            .unwrap_or(Duration::from_secs(5))
            .min(self.config.every.max(Duration::from_secs(5)))
    }

    fn emit(&self, event: &RelayEvent<'_>) {
        if let Some(f) = &self.config.observer {
            f(event);
        }
    }
}

enum Step {
    Standby,
    Round(RoundReport),
}

/// Whether a PostgreSQL failure is worth retrying: transient kinds, and `Internal`
/// (a server error ferry does not classify, e.g. a failover in progress).
fn retryable(e: &Error) -> bool {
    e.is_transient() || matches!(e.kind(), ErrorKind::Internal | ErrorKind::Closed)
}
