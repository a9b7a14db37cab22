//! Fault tests of `ferry relay` with real processes: the PostgreSQL outbox relayed into
//! an embedded data directory while this process commits 2,000 rows, some of them in
//! transactions that commit after a later transaction's rows were relayed.
//!
//! (a) One relay at a time, SIGKILLed every 150–400 ms and restarted, until the outbox
//!     is empty. (b) Two relays at once (one leads, one stands by), and the leader
//!     SIGKILLed and restarted midway.
//!
//! Verdict: the ledger (`sent` for every committed row, `fault` for every kill) against
//! the target queue: nothing lost, no phantom, the queue holds every id exactly once
//! (ready count == distinct ids == 2,000), rows of one transaction in order, and
//! duplicates (re-forwarded rows, which the target drops by id) only in a relay that
//! started after a kill, at most one batch per kill.
//!
//! PostgreSQL at `FERRY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test its own schema, dropped after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::tx::Destination;
use ferry::{Driver, Message, QueueName, QueueOptions, ReceiveOptions};
use ferry_postgres::Outbox;
use ferry_testkit::ledger::{Event, FinalState, Ledger, check};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const PAIRS: usize = 40;
const PER_TX: usize = 25;
const TOTAL: usize = PAIRS * 2 * PER_TX;
/// Rows per relay round: small, so the relay is mostly mid-round when it is killed.
const BATCH: usize = 2;
/// Pairs committed before the relays start.
const BACKLOG: usize = 16;
/// Every this many pairs, A commits only after B's rows were relayed.
const LATE_EVERY: usize = 5;

fn pg_url() -> String {
    std::env::var("FERRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

struct Run {
    tmp: tempfile::TempDir,
    schema: String,
    pool: PgPool,
    outbox: Outbox,
    target: Arc<dyn Driver>,
    ledger: Ledger,
    generation: usize,
}

impl Run {
    async fn new() -> Run {
        let tmp = tempfile::tempdir().expect("tempdir");
        let schema = format!(
            "ferry_test_{}_{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&pg_url())
            .await
            .expect("connect to PostgreSQL");
        let outbox = Outbox::new(&schema).expect("schema");
        outbox.migrate(&pool).await.expect("migrate");
        let target = ferry::connect(&format!("file:{}", tmp.path().join("data").display()))
            .expect("open target");
        target
            .create_queue(&queue(), QueueOptions::default())
            .await
            .expect("create queue");
        let ledger = Ledger::new(tmp.path().join("ledger.jsonl"));
        Run {
            tmp,
            schema,
            pool,
            outbox,
            target,
            ledger,
            generation: 0,
        }
    }

    fn from(&self) -> String {
        let base = pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}schema={}", self.schema)
    }

    fn log(&self, generation: usize) -> PathBuf {
        self.tmp.path().join(format!("relay-{generation}.log"))
    }

    /// Starts `ferry relay`, its stderr in `relay-<generation>.log`.
    fn spawn(&mut self) -> (usize, Child) {
        let g = self.generation;
        self.generation += 1;
        let log = std::fs::File::create(self.log(g)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["relay", "--from", &self.from()])
            .arg("--to")
            .arg(format!("file:{}", self.tmp.path().join("data").display()))
            .args(["--batch", &BATCH.to_string(), "--every", "50ms"])
            .env_remove("FERRY_BACKEND")
            .env_remove("FERRY_CONFIG")
            .current_dir(self.tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ferry relay");
        (g, child)
    }

    fn kill(&self, (g, mut child): (usize, Child)) {
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("wait");
        self.ledger
            .append(&Event::Fault {
                kind: format!("SIGKILL relay generation {g} ({status})"),
            })
            .expect("ledger");
    }

    async fn pending(&self) -> u64 {
        self.outbox.pending(&self.pool).await.expect("pending")
    }

    /// Everything in the target queue, in order.
    async fn queued(&self) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let got = self
                .target
                .receive(
                    &queue(),
                    ReceiveOptions::max(500).with_lease(Duration::from_secs(600)),
                )
                .await
                .expect("receive");
            if got.is_empty() {
                return ids;
            }
            ids.extend(got.into_iter().map(|d| d.id));
        }
    }

    /// The verdict: see the module docs. `kills_before[g]`: kills before generation g.
    async fn verdict(&self, kills_before: &BTreeMap<usize, usize>) {
        let ready = self.target.stats(Some(&queue())).await.expect("stats")[0].ready;
        let ids = self.queued().await;
        let distinct: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(ready as usize, TOTAL, "ready count");
        assert_eq!(ids.len(), TOTAL, "received");
        assert_eq!(distinct.len(), TOTAL, "distinct ids");

        let (events, torn) = self.ledger.read().expect("ledger");
        assert_eq!(torn, 0);
        let v = check(
            &events,
            &FinalState {
                queued: distinct,
                dead: BTreeSet::new(),
            },
        );
        v.assert_ok();
        assert_eq!(v.sent, TOTAL);

        // Rows of one transaction arrive in their order (ids `o-PAIR-SIDE-INDEX`).
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for id in &ids {
            let (tx, index) = id.rsplit_once('-').expect("id shape");
            let index: usize = index.parse().expect("index");
            if let Some(prev) = last.insert(tx.to_string(), index) {
                assert!(prev < index, "{tx}: row {index} after row {prev}");
            }
        }

        // Some A transactions committed after their B's rows (higher seqs) were relayed,
        // and were relayed anyway: the case a `seq > last_seen` cursor skips.
        let position: BTreeMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let late = (0..PAIRS)
            .filter(|p| {
                let a = position.get(format!("o-{p}-a-0").as_str());
                let b = position.get(format!("o-{p}-b-0").as_str());
                matches!((a, b), (Some(a), Some(b)) if b < a)
            })
            .count();
        eprintln!("{late} of {PAIRS} A transactions were relayed after their later B");
        assert!(
            late >= (PAIRS - BACKLOG) / LATE_EVERY,
            "only {late} late commits"
        );

        // Duplicates only after a kill, at most one batch per kill.
        let mut total_dups = 0;
        for g in 0..self.generation {
            let text = std::fs::read_to_string(self.log(g)).unwrap_or_default();
            let dups: usize = text
                .lines()
                .filter_map(|l| l.split("duplicates=").nth(1))
                .filter_map(|r| r.split_whitespace().next()?.parse::<usize>().ok())
                .sum();
            total_dups += dups;
            let rounds = text
                .lines()
                .filter(|l| l.contains("round fetched="))
                .count();
            eprintln!("relay generation {g}: {rounds} rounds, {dups} rows re-forwarded");
            let kills = kills_before.get(&g).copied().unwrap_or(0);
            assert!(
                dups <= kills * BATCH,
                "relay generation {g} re-forwarded {dups} rows after {kills} kills:\n{text}"
            );
        }
        eprintln!(
            "{total_dups} rows re-forwarded (dropped by id) over {} relay generations",
            self.generation
        );
        assert_eq!(self.pending().await, 0);
    }

    async fn drop_schema(&self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        )))
        .execute(&self.pool)
        .await;
    }
}

fn queue() -> QueueName {
    QueueName::new("events").expect("queue name")
}

/// Commits `PAIRS` pairs of transactions: A enqueues first (lower seqs), B after, B
/// commits, then A, so A's rows often appear below rows already relayed; every
/// `LATE_EVERY`th pair A waits, open, until B's rows were relayed (the case a
/// `seq > last_seen` cursor skips, made certain). Appends `sent` to the ledger after
/// each commit. Pairs below `BACKLOG` are committed before any relay runs, so the
/// relays start with a backlog and are mostly mid-round when killed.
async fn produce(
    pool: PgPool,
    outbox: Outbox,
    ledger_path: PathBuf,
    seed: u64,
    pairs: std::ops::Range<usize>,
) {
    let ledger = Ledger::new(ledger_path);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dest = Destination::queue(queue());
    let waiting = format!(
        "SELECT count(*) FROM {}.outbox WHERE id = $1",
        outbox.schema()
    );
    for pair in pairs {
        let rows = |side: &str| -> Vec<(Destination, Message)> {
            (0..PER_TX)
                .map(|i| {
                    let id = format!("o-{pair}-{side}-{i}");
                    (dest.clone(), Message::new(id.clone()).with_id(id))
                })
                .collect()
        };
        let (a_rows, b_rows) = (rows("a"), rows("b"));
        let mut a = pool.begin().await.expect("begin a");
        outbox
            .enqueue_batch(&mut a, &a_rows)
            .await
            .expect("enqueue a");
        let mut b = pool.begin().await.expect("begin b");
        outbox
            .enqueue_batch(&mut b, &b_rows)
            .await
            .expect("enqueue b");
        b.commit().await.expect("commit b");
        sent(&ledger, &b_rows);
        if pair >= BACKLOG && pair % LATE_EVERY == 0 {
            let last_b = format!("o-{pair}-b-{}", PER_TX - 1);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(waiting.clone()))
                    .bind(&last_b)
                    .fetch_one(&pool)
                    .await
                    .expect("outbox count");
                if left == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "B of pair {pair} never relayed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..40))).await;
        }
        a.commit().await.expect("commit a");
        sent(&ledger, &a_rows);
        tokio::time::sleep(Duration::from_millis(rng.u64(0..40))).await;
    }
}

fn sent(ledger: &Ledger, rows: &[(Destination, Message)]) {
    let events: Vec<Event> = rows
        .iter()
        .map(|(_, m)| Event::Sent {
            id: m.id().to_string(),
        })
        .collect();
    ledger.append_all(&events).expect("ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_skips_nothing() {
    let mut run = Run::new().await;
    let seed = fastrand::u64(..);
    eprintln!("relay kill test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let backlog = produce(
        run.pool.clone(),
        run.outbox.clone(),
        run.ledger.path().to_path_buf(),
        seed,
        0..BACKLOG,
    );
    backlog.await;
    let producer = tokio::spawn(produce(
        run.pool.clone(),
        run.outbox.clone(),
        run.ledger.path().to_path_buf(),
        seed,
        BACKLOG..PAIRS,
    ));
    let mut kills_before = BTreeMap::new();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let relay = run.spawn();
        kills_before.insert(relay.0, kills);
        tokio::time::sleep(Duration::from_millis(rng.u64(150..400))).await;
        let done = producer.is_finished() && run.pending().await == 0;
        run.kill(relay);
        kills += 1;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outbox not empty after 25 s: {} rows left",
            run.pending().await
        );
    }
    producer.await.expect("producer");
    eprintln!("{kills} kills over {} relay generations", run.generation);
    assert!(kills >= 8, "the relay was killed only {kills} times");
    run.verdict(&kills_before).await;
    run.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_and_a_restart_skip_nothing() {
    let mut run = Run::new().await;
    let seed = fastrand::u64(..);
    eprintln!("two relays test seed {seed}");
    let backlog = produce(
        run.pool.clone(),
        run.outbox.clone(),
        run.ledger.path().to_path_buf(),
        seed,
        0..BACKLOG,
    );
    backlog.await;
    let producer = tokio::spawn(produce(
        run.pool.clone(),
        run.outbox.clone(),
        run.ledger.path().to_path_buf(),
        seed,
        BACKLOG..PAIRS,
    ));
    let mut kills_before = BTreeMap::new();
    let first = run.spawn();
    kills_before.insert(first.0, 0);
    let second = run.spawn();
    kills_before.insert(second.0, 0);

    // Midway: kill the first (the leader, unless the second won the start) and restart it.
    let deadline = Instant::now() + Duration::from_secs(25);
    while run.pending().await == 0 || !rows_relayed(&run).await {
        assert!(Instant::now() < deadline, "nothing relayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.kill(first);
    // The survivor may now re-forward the killed leader's last round.
    kills_before.insert(second.0, 1);
    let third = run.spawn();
    kills_before.insert(third.0, 1);

    producer.await.expect("producer");
    while run.pending().await > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not empty after 25 s: {} rows left",
            run.pending().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (g, child) in [second, third] {
        stop(g, child);
    }
    let logs: Vec<String> = (0..run.generation)
        .map(|g| std::fs::read_to_string(run.log(g)).unwrap_or_default())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("standing by")),
        "one relay stood by while another led:\n{logs:#?}"
    );
    run.verdict(&kills_before).await;
    run.drop_schema().await;
}

/// Whether the target holds anything yet.
async fn rows_relayed(run: &Run) -> bool {
    run.target.stats(Some(&queue())).await.expect("stats")[0].ready > 0
}

/// SIGTERM, and a clean exit within 10 s.
fn stop(g: usize, mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "relay generation {g} exited with {status}"
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("relay generation {g} did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
