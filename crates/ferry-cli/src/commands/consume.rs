//! `ferry consume QUEUE --exec CMD`: a worker in any language.
//!
//! The library's `Consumer` does the hard parts (leases renewed while the command runs,
//! durable retries with backoff, dead-lettering on the last attempt, graceful
//! shutdown); this module only wires the command line to it and runs the command per
//! message (see `crate::exec`).

use std::future::Future;
use std::sync::Arc;

use ferry::{
    Backoff, Consumer, ConsumerBuilder, ConsumerReport, Delivery, Driver, Error, ErrorKind,
    QueueName, Result, RetryPolicy, format_duration,
};

use crate::args::ConsumeArgs;
use crate::exec::ExecHandler;

/// Consumes until SIGINT/SIGTERM (or, with `--until-empty`, until the queue is drained),
/// then prints a summary on stderr.
pub async fn run(driver: Arc<dyn Driver>, args: ConsumeArgs) -> Result<()> {
    let Some(queue) = args.queue.clone() else {
        return Err(Error::invalid_input(
            "name the queue to consume: ferry consume QUEUE --exec CMD",
        ));
    };
    let worker = Worker::prepare(&driver, &args, queue).await?;
    let shutdown = shutdown_signal(args.grace)?;
    let report = worker.consumer(driver).run(shutdown).await?;
    eprintln!("{}", summary(worker.queue.as_str(), &report));
    Ok(())
}

/// The consumer the flags describe, ready to be built (once, or once per round).
#[derive(Debug)]
pub struct Worker {
    /// The queue consumed.
    pub queue: QueueName,
    builder: ConsumerBuilder,
    handler: ExecHandler,
}

impl Worker {
    /// Checks the flags and that the queue exists (failing fast, with the fix), and
    /// configures the consumer.
    pub async fn prepare(
        driver: &Arc<dyn Driver>,
        args: &ConsumeArgs,
        queue: QueueName,
    ) -> Result<Worker> {
        if args.backoff > args.max_backoff {
            return Err(Error::invalid_input(format!(
                "--backoff {} is longer than --max-backoff {}; lower --backoff or raise --max-backoff",
                format_duration(args.backoff),
                format_duration(args.max_backoff)
            )));
        }
        let info = driver.get_queue(&queue).await?;

        let mut retry = RetryPolicy::default().with_backoff(Backoff::Exponential {
            initial: args.backoff,
            max: args.max_backoff,
            jitter: true,
        });
        if let Some(n) = args.max_attempts {
            retry = retry.with_max_attempts(n);
        }
        let mut builder = Consumer::builder(queue.clone())
            .concurrency(args.concurrency)
            .retry_policy(retry)
            .until_empty(args.until_empty)
            .grace(args.grace);
        if let Some(lease) = args.lease {
            builder = builder.lease(lease);
        }
        if let Some(timeout) = args.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(batch) = args.batch {
            builder = builder.prefetch(batch);
        }
        if let Some(rate) = args.rate.and_then(ferry::consumer::RateLimit::per_second) {
            builder = builder.rate_limit(rate);
        }
        if args.idempotent {
            let store = driver.idempotency_store().ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    "this backend has no idempotency store; drop --idempotent",
                )
            })?;
            builder = builder.idempotency(store);
            if let Some(cmd) = &args.ensure {
                let ensure = crate::exec::ExecEnsure::new(cmd);
                builder = builder.ensure(move |d: Delivery| {
                    let ensure = ensure.clone();
                    async move { ensure.already_done(d).await }
                });
            }
        }
        tracing::info!(
            queue = %queue,
            concurrency = args.concurrency,
            max_attempts = args.max_attempts.unwrap_or(info.options.max_attempts),
            "consuming"
        );
        Ok(Worker {
            queue,
            builder,
            handler: ExecHandler::new(&args.exec),
        })
    }

    /// A consumer running the command per message.
    pub fn consumer(&self, driver: Arc<dyn Driver>) -> Consumer {
        let handler = self.handler.clone();
        self.builder.clone().build(driver, move |d: Delivery| {
            let handler = handler.clone();
            async move { handler.handle(d).await }
        })
    }
}

/// The one-line summary printed at exit.
pub fn summary(queue: &str, r: &ConsumerReport) -> String {
    let mut line = format!(
        "ferry consume {queue}: received {}, acked {}, retried {}, dead-lettered {}",
        r.received, r.acked, r.retried, r.dead_lettered
    );
    if r.timed_out > 0 {
        line.push_str(&format!(", timed out {}", r.timed_out));
    }
    if r.duplicates > 0 {
        line.push_str(&format!(", skipped as already done {}", r.duplicates));
    }
    if r.released > 0 {
        line.push_str(&format!(
            ", handed back unfinished {} (not counted as attempts)",
            r.released
        ));
    }
    if r.settle_errors > 0 {
        line.push_str(&format!(
            ", not settled {} (their leases expire and they are delivered again)",
            r.settle_errors
        ));
    }
    line
}

/// A future that resolves on the first SIGINT or SIGTERM. The handlers are installed
/// now, before consuming starts, so a signal never kills the process mid-message.
pub fn shutdown_signal(grace: std::time::Duration) -> Result<impl Future<Output = ()> + Send> {
    let io = |e: std::io::Error| {
        Error::new(ErrorKind::Io, "cannot install the signal handlers").with_source(e)
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        Ok(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            announce(name, grace);
        })
    }
    #[cfg(not(unix))]
    {
        let _ = io;
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            announce("Ctrl-C", grace);
        })
    }
}

fn announce(signal: &str, grace: std::time::Duration) {
    eprintln!(
        "ferry consume: {signal} received; no new messages, waiting up to {} for running commands",
        format_duration(grace)
    );
}
