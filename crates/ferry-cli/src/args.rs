//! The command line, declared with clap's derive API.
//!
//! Input is validated here, at parse time, with the same functions the library uses
//! (`QueueName::from_str`, `parse_duration`, `validate_pattern`, ...), so a bad argument
//! is rejected before any backend is opened and the error names the fix.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferry::{QueueName, TopicName, parse_duration};

/// ferry: reliable messaging from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Reliable messaging: durable queues, topics, retries and dead letters",
    long_about = "Reliable messaging: durable queues, topics, retries and dead letters.\n\n\
        Start with `ferry demo` to see it work, then create a queue, send to it and consume \
        it with any program: `ferry consume QUEUE --exec 'your-command'` runs the command \
        once per message with the payload on stdin.",
    after_help = "Durations are written like 500ms, 30s, 5m, 2h or 1d.\n\
        Names of queues and topics use A-Z a-z 0-9 _ - . (at most 128 characters)."
)]
pub struct Cli {
    /// Backend URL: file:PATH (embedded on-disk store, the default: file:./ferry-data),
    /// memory:, redis[s]://HOST:PORT[/DB], redis+sentinel://HOST:PORT[,…]/MASTER,
    /// redis+cluster://HOST:PORT[,…]. Without it and FERRY_BACKEND, REDIS_MODE /
    /// REDIS_ADDRS / REDIS_MASTER_NAME / REDIS_PASSWORD select a Redis deployment.
    #[arg(
        long,
        global = true,
        env = "FERRY_BACKEND",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub backend: Option<String>,

    /// Config file (TOML) with defaults for every option of every command
    /// [default: ./ferry.toml if it exists]. Flags win over FERRY_* variables, which win
    /// over the file; see `ferry config show`.
    #[arg(long, global = true, env = "FERRY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Export traces (one span per HTTP request of `ferry serve`, ...) over OTLP/HTTP to
    /// this collector URL (e.g. http://otel-collector:4318; `/v1/traces` is appended
    /// unless given). Needs a ferry built with `--features otel`; off when unset.
    #[arg(
        long,
        global = true,
        env = "FERRY_OTEL_ENDPOINT",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub otel_endpoint: Option<String>,

    /// The `service.name` of exported traces.
    #[arg(long, global = true, value_name = "NAME", default_value = "ferry")]
    pub otel_service_name: String,

    /// The audit log that `serve` and the CLI's changes append to and `audit` reads
    /// [default: audit.jsonl in a file: backend's directory, else ./ferry-audit.jsonl].
    #[arg(long, global = true, env = "FERRY_AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and delete queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Create and list topics; bind them to queues with route-key patterns.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Send one message to a queue and print its id.
    Send(SendArgs),
    /// Publish one message to a topic; it reaches every queue bound with a matching pattern.
    Publish(PublishArgs),
    /// Run a command for every message of a queue (payload on stdin; exit 0 acks).
    Consume(ConsumeArgs),
    /// Inspect, requeue, delete, purge, approve and re-drive dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Prepared two-phase messages waiting for their transaction (read-only).
    #[command(subcommand)]
    Tx(TxCommand),
    /// Message counts per queue: ready, delayed, in flight, dead.
    Stats(StatsArgs),
    /// The history of one message: sent, delivered, retried, dead-lettered, acked, ...
    Inspect {
        /// The queue.
        queue: QueueName,
        /// The message id.
        #[arg(value_parser = parse_message_id)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A self-contained tour: 300 messages, failures, retries, dead letters (ignores --backend).
    Demo(DemoArgs),
    /// Measure send and receive+ack throughput and latency on a backend.
    Bench(BenchArgs),
    /// Check the backend's settings: one line per finding; exit 1 if any is an error.
    Doctor(DoctorArgs),
    /// Run the HTTP API, the web dashboard, /metrics and health checks.
    Serve(ServeArgs),
    /// Forward a PostgreSQL outbox's committed messages to a backend, until SIGINT/SIGTERM.
    Relay(RelayArgs),
    /// Print the audit log: who requeued, purged, deleted, edited or paused what.
    Audit(AuditArgs),
    /// Show the resolved configuration (ferry.toml, FERRY_* variables, flags) or check
    /// the config file.
    #[command(subcommand)]
    Config(crate::config::ConfigCommand),
}

/// `ferry tx …`
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// List prepared messages, oldest first: destination, state, checks, when due.
    List {
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one prepared message with its payload.
    Show {
        /// The message id.
        #[arg(value_parser = parse_message_id)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `ferry serve`
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the JSON HTTP API (OpenAPI at /api/openapi.json), the web dashboard \
    at /, Prometheus metrics at /metrics and /healthz + /readyz, over the backend.\n\n\
    Secure by default: without --token (or FERRY_TOKEN, or [[serve.tokens]] in ferry.toml) \
    it generates an admin token, prints it once, and listens on 127.0.0.1 only. Every \
    change an operator makes is appended to the audit log (see `ferry audit`).",
    after_help = "Examples:\n  ferry serve --demo                 # dashboard with live demo data\n  \
    FERRY_TOKEN=$(openssl rand -hex 24) ferry serve --bind 0.0.0.0:8080 --allow-host ferry.internal"
)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// The admin token (at least 16 characters). Without any token one is generated.
    #[arg(
        long,
        env = "FERRY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A read-only token: sees everything, changes nothing.
    #[arg(
        long,
        env = "FERRY_READ_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub read_token: Option<String>,
    /// Another host name the Host header may carry (loopback names always may); `*`
    /// turns the check off. Repeat for more.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body: usize,
    /// Requests per second per client address (bursts of twice that); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub rate_limit: u32,
    /// Serve /metrics without a token (for a Prometheus on a trusted network).
    #[arg(long)]
    pub public_metrics: bool,
    /// Mark the session cookie Secure (when a TLS proxy is in front).
    #[arg(long)]
    pub secure_cookies: bool,
    /// How often queue counts are sampled for charts, rates and alerts.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "5s")]
    pub sample_interval: Duration,
    /// Also run a demo producer and consumer on queue `demo.emails`, so the dashboard
    /// shows live data (some messages fail, retry and dead-letter).
    #[arg(long)]
    pub demo: bool,
}

/// `ferry relay`
#[derive(Debug, Args)]
#[command(
    long_about = "Forwards the messages applications wrote into a PostgreSQL outbox \
    (ferry_postgres::Outbox::enqueue, inside their own transactions) to any backend, in order \
    per queue, and deletes each row in the transaction that forwarded it: nothing is skipped, \
    a crash re-forwards rows under the same ids (dropped by the target while queued).\n\n\
    Run several for availability: only the one holding the schema's lock forwards; the others \
    stand by and take over when it dies. A row the target refuses (no such queue, unroutable) \
    stays, is logged and retried with backoff, and does not block other destinations.",
    after_help = "Examples:\n  ferry relay --from postgres://app@db/shop --to redis://127.0.0.1:6379\n  \
    ferry relay --from 'postgres://app@db/shop?schema=shop_ferry' --to file:./ferry-data --batch 500 --every 200ms"
)]
pub struct RelayArgs {
    /// The database whose outbox to read: postgres://USER@HOST:PORT/DATABASE[?schema=NAME]
    /// (default schema ferry; its tables are created if missing).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub from: String,
    /// The backend to forward to: any backend URL (file:PATH, redis://…, amqp://…,
    /// postgres://…).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub to: String,
    /// Most rows per round (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// How often to look for rows without a commit notification, and how often a
    /// standby relay tries to take over.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "1s")]
    pub every: Duration,
    /// Don't LISTEN for commits: find rows only by looking every --every.
    #[arg(long)]
    pub no_listen: bool,
}

/// `ferry audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Show at most this many of the newest entries.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ferry doctor`
#[derive(Debug, Args)]
#[command(
    long_about = "Connects to the backend and reports what puts messages at risk, one line \
    per finding: `ok|warn|error  CHECK  MESSAGE`, the message saying what was found, what it \
    risks and the fix.\n\n\
    Redis: version, role, memory, eviction policy (anything but noeviction lets Redis delete \
    ferry's keys: error when maxmemory is set), persistence (no AOF: warn); every master of a \
    Cluster, the current master under Sentinel. A server that refuses CONFIG gets warnings \
    saying what could not be checked. file: the data file opens and its format is ferry's; \
    memory: nothing to check.",
    after_help = "Exit status: 0 when no finding is an error (warnings included), 1 when one \
    is or the backend cannot be reached, 2 for a bad backend URL."
)]
pub struct DoctorArgs {
    /// Print JSON: {"backend","healthy","findings":[{"severity","check","message"}]}.
    #[arg(long)]
    pub json: bool,
}

/// `ferry queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue, or change the given settings of an existing one.
    Create(QueueCreateArgs),
    /// List queues and their settings.
    List(JsonFlag),
    /// Delete a queue with its messages, dead letters and bindings.
    Delete {
        /// The queue.
        name: QueueName,
    },
}

/// `ferry queue create`
#[derive(Debug, Args)]
pub struct QueueCreateArgs {
    /// The queue name.
    pub name: QueueName,
    /// Delay applied to messages sent without their own delay (default 0).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Deliveries before a failing message is dead-lettered (default 10).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,
    /// How long a consumer holds a message before it is handed to another (default 30s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lease: Option<Duration>,
}

/// A `--json` switch.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ferry topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (no-op if it exists).
    Create {
        /// The topic name.
        name: TopicName,
    },
    /// List topics.
    List(JsonFlag),
    /// Delete a topic and its bindings (queues and their messages stay).
    Delete {
        /// The topic name.
        name: TopicName,
    },
    /// Route messages published to TOPIC whose route key matches PATTERN into QUEUE.
    #[command(
        after_help = "Patterns are dot-separated words: '*' matches exactly one word, \
        '#' zero or more.\nExample: ferry topic bind orders billing 'order.*.paid'"
    )]
    Bind(BindArgs),
    /// Remove a binding.
    Unbind(BindArgs),
    /// List the bindings of a topic.
    Bindings {
        /// The topic name.
        topic: TopicName,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `ferry topic bind|unbind TOPIC QUEUE PATTERN`
#[derive(Debug, Args)]
pub struct BindArgs {
    /// The topic.
    pub topic: TopicName,
    /// The queue that receives matching messages.
    pub queue: QueueName,
    /// Route-key pattern: words separated by '.', '*' one word, '#' zero or more.
    #[arg(value_parser = parse_pattern)]
    pub pattern: String,
}

/// Options shared by `send` and `publish`.
#[derive(Debug, Args)]
pub struct MessageArgs {
    /// The payload; read from stdin when omitted.
    pub payload: Option<String>,
    /// Message id (a business key); a generated UUIDv7 when omitted. While a message
    /// with this id is queued, sending it again does nothing.
    #[arg(long, value_name = "ID", value_parser = parse_message_id)]
    pub id: Option<String>,
    /// Deliver no earlier than this long from now (overrides the queue's delay).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Priority 0-255; higher is delivered first.
    #[arg(long, value_name = "N")]
    pub priority: Option<u8>,
    /// A header, as KEY=VALUE; repeat for more.
    #[arg(long = "header", value_name = "K=V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
}

/// `ferry send QUEUE [PAYLOAD]`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry send emails '{\"to\":\"ann@example.com\"}'\n  \
    echo hello | ferry send jobs --delay 30s --header kind=greeting"
)]
pub struct SendArgs {
    /// The queue.
    pub queue: QueueName,
    /// The message.
    #[command(flatten)]
    pub message: MessageArgs,
}

/// `ferry publish TOPIC ROUTE_KEY [PAYLOAD]`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  ferry publish orders order.eu.paid '{\"order\":42}'")]
pub struct PublishArgs {
    /// The topic.
    pub topic: TopicName,
    /// Route key: words separated by '.', like order.eu.paid.
    #[arg(value_parser = parse_route_key)]
    pub route_key: String,
    /// The message.
    #[command(flatten)]
    pub message: MessageArgs,
}

/// `ferry consume QUEUE --exec CMD`
#[derive(Debug, Args)]
#[command(after_help = "The command runs with `sh -c`, once per message:\n  \
    stdin            the payload\n  \
    FERRY_MESSAGE_ID the message id\n  \
    FERRY_QUEUE      the queue\n  \
    FERRY_ATTEMPT    1 on the first delivery, 2 on the first retry, ...\n  \
    FERRY_ROUTE_KEY  the route key it was published with (empty for a direct send)\n\
    Exit status 0 acks the message; any other status retries it with backoff, and the \
    last allowed attempt moves it to the dead letters with the status and the end of \
    stderr as its error.\n\
    SIGINT or SIGTERM stops receiving and gives running commands up to --grace to finish \
    (Ctrl-C in a terminal reaches the commands too; a command it interrupts is retried).\n\n\
    Example:\n  ferry consume emails --exec 'python3 send_email.py' --concurrency 4\n\n\
    A plain Redis list that other programs LPUSH raw payloads to (needs a Redis backend):\n  \
    ferry --backend redis://127.0.0.1:6379 consume --from-redis-list jobs --exec './work'")]
pub struct ConsumeArgs {
    /// The queue (with --from-redis-list: where the list's items go, created if missing;
    /// default redis-list.KEY, with characters other than A-Z a-z 0-9 _ - . as '_').
    #[arg(required_unless_present = "from_redis_list")]
    pub queue: Option<QueueName>,
    /// Consume the plain Redis list KEY that other programs LPUSH raw payloads to: its
    /// items are moved, at least once, into the queue and consumed from there with
    /// ferry's retries and dead letters. Needs a Redis backend.
    #[arg(long, value_name = "KEY")]
    pub from_redis_list: Option<String>,
    /// With --from-redis-list: how long an item may stay taken from the list but
    /// unconfirmed in the queue (its mover crashed) before it is sent again [default: 30s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "from_redis_list")]
    pub reclaim_after: Option<Duration>,
    /// The command to run per message (with sh -c).
    #[arg(long, value_name = "CMD")]
    pub exec: String,
    /// How many commands run at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub concurrency: usize,
    /// Attempts before a failing message is dead-lettered (default: the queue's setting).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,
    /// Lease per message, renewed while the command runs (default: the queue's setting).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// Kill the command and count a failed attempt after this long (default: no limit).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit once the queue has nothing ready, delayed or in flight (with
    /// --from-redis-list: and the list is empty).
    #[arg(long)]
    pub until_empty: bool,
    /// On SIGINT/SIGTERM, how long running commands may take before they are killed
    /// and their messages handed back.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Delay before the first retry; doubles each attempt (with jitter).
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,
    /// Longest delay between retries.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Start at most this many messages per second (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Most messages fetched per receive call (default: the concurrency).
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub batch: Option<usize>,
    /// Process each message's work at most once per idempotency key (queue/message id):
    /// keys are claimed in the backend before the command runs and marked done after
    /// it succeeds; a redelivered message whose work is done is acked without running.
    #[arg(long)]
    pub idempotent: bool,
    /// With --idempotent: when an earlier worker died mid-command on the same message,
    /// run CMD (same stdin and environment) to ask whether its work already happened:
    /// exit 0 = done (ack without running --exec), exit 1 = not done (run it), other =
    /// failed attempt.
    #[arg(long, value_name = "CMD", requires = "idempotent")]
    pub ensure: Option<String>,
}

/// `ferry dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a queue's dead letters, oldest first.
    List(DlqListArgs),
    /// Show one dead letter with its payload.
    Show {
        /// The queue.
        queue: QueueName,
        /// The message id.
        #[arg(value_parser = parse_message_id)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back into the queue, ready now, with attempts reset.
    Requeue {
        /// The queue.
        queue: QueueName,
        /// Message ids to requeue.
        #[arg(required_unless_present = "all", value_parser = parse_message_id)]
        ids: Vec<String>,
        /// Requeue every dead letter of the queue.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete dead letters for good.
    Delete {
        /// The queue.
        queue: QueueName,
        /// Message ids to delete.
        #[arg(required = true, value_parser = parse_message_id)]
        ids: Vec<String>,
    },
    /// Delete every dead letter of a queue for good.
    Purge {
        /// The queue.
        queue: QueueName,
    },
    /// Approve dead letters for re-drive: `ferry dlq redrive` moves each back once.
    #[command(
        long_about = "Approves dead letters for re-drive. An approval belongs to this death of the \
        message: `ferry dlq redrive` moves an approved dead letter back into its queue once, and \
        if the message dies again it stays dead until it is approved again. Approving an \
        approved dead letter again changes nothing.",
        after_help = "Examples:\n  ferry dlq approve emails 0190a1b2-... 0190a1b3-...\n  \
        ferry dlq approve emails --all"
    )]
    Approve {
        /// The queue.
        queue: QueueName,
        /// Message ids to approve.
        #[arg(required_unless_present = "all", value_parser = parse_message_id)]
        ids: Vec<String>,
        /// Approve every dead letter of the queue.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Move approved dead letters back into their queues: one round, or with --every
    /// until SIGINT/SIGTERM. Prints each re-driven id.
    Redrive(DlqRedriveArgs),
}

/// `ferry dlq redrive`
#[derive(Debug, Args)]
#[command(
    long_about = "Moves approved dead letters (see `ferry dlq approve`) back into their queues, \
    ready now with their attempts reset, and prints one line per message: QUEUE and ID \
    (with --json, one JSON object per line). Without --every it runs one round and exits; \
    with --every it runs a round at that pace until SIGINT or SIGTERM, riding out backend \
    outages. Any number of these may run at once, in any processes: each approved dead \
    letter is moved once per approval.",
    after_help = "Examples:\n  ferry dlq redrive emails\n  ferry dlq redrive emails invoices --every 30s --max 500"
)]
pub struct DlqRedriveArgs {
    /// The queues to re-drive.
    #[arg(required = true)]
    pub queues: Vec<QueueName>,
    /// Keep running, one round every DUR, until SIGINT/SIGTERM.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Most dead letters moved per queue and round.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max: u64,
    /// One JSON object per re-driven message: {"queue","id"}.
    #[arg(long)]
    pub json: bool,
}

/// `ferry dlq list`
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The queue.
    pub queue: QueueName,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show at most this many.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u64,
    /// Skip this many first.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: u64,
    /// Only dead letters with this reason (max_attempts, rejected, timeout, lease_expired, ...).
    #[arg(long, value_name = "R")]
    pub reason: Option<String>,
    /// Only dead letters approved for re-drive (`ferry dlq approve`).
    #[arg(long)]
    pub approved: bool,
}

/// `ferry stats [QUEUE]`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this queue.
    pub queue: Option<QueueName>,
    /// Print JSON: {"queues":[{"name","ready","delayed","in_flight","dead"}]}.
    #[arg(long)]
    pub json: bool,
}

/// `ferry demo`
#[derive(Debug, Args)]
#[command(
    long_about = "Runs a self-contained tour in a fresh temporary data directory \
    (--backend is ignored): creates a queue, sends 300 messages, consumes them with 8 workers \
    while every 10th message fails once and every 50th always fails, then shows the retries, \
    the dead letters and how to requeue them. The directory is kept so you can explore it \
    with the commands printed at the end."
)]
pub struct DemoArgs {
    /// Where to create the demo's data directory (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `ferry bench`
#[derive(Debug, Args)]
#[command(
    after_help = "Prints `enqueue_jobs_per_s=... process_jobs_per_s=...` and a line of \
    per-call latency percentiles. Uses a fresh queue and deletes it at the end."
)]
pub struct BenchArgs {
    /// Messages to send and then consume.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Payload size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub size: usize,
    /// Messages per send call and most messages per receive call.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub batch: usize,
    /// Concurrent producer tasks, then concurrent consumer tasks.
    #[arg(long, value_name = "C", default_value_t = 4,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    pub consumers: usize,
    /// Commit every operation on its own (file: backends only), to measure group commit.
    #[arg(long)]
    pub no_group_commit: bool,
    /// Record no message history (file: and redis backends), to measure its cost.
    #[arg(long, conflicts_with = "history_retention")]
    pub no_history: bool,
    /// Keep message history this long (file: and redis backends; default 7d). A short
    /// retention makes the pruning of done messages part of the measurement.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub history_retention: Option<Duration>,
}

fn parse_pattern(s: &str) -> Result<String, ferry::Error> {
    ferry::validate_pattern(s)?;
    Ok(s.to_string())
}

fn parse_route_key(s: &str) -> Result<String, ferry::Error> {
    ferry::validate_route_key(s)?;
    Ok(s.to_string())
}

fn parse_message_id(s: &str) -> Result<String, ferry::Error> {
    ferry::validate_message_id(s)?;
    Ok(s.to_string())
}

/// Parses `KEY=VALUE` (the value may contain `=`; the key may not be empty).
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        Some(_) => Err(format!("header '{s}' has an empty name; write KEY=VALUE")),
        None => Err(format!("header '{s}' has no '='; write KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_header("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_header("ab").is_err());
        assert!(parse_header("=b").is_err());
    }
}
