//! The `ferry` binary: queues, topics, send, publish, consume, dead letters, stats,
//! demo and bench over any backend, chosen with `--backend URL` (or `FERRY_BACKEND`).
//!
//! `main` only parses, dispatches and turns the result into an exit status (see
//! [`exit`]): 0 on success, 2 for input errors, 1 for backend and runtime failures (and
//! for `ferry doctor`, 1 when a finding is an error).

mod args;
mod audited;
mod commands;
mod config;
mod exec;
mod exit;
mod output;
mod telemetry;

use std::process::ExitCode;

use crate::args::{Cli, Command};
use crate::commands::{
    audit, bench, consume, consume_list, demo, dlq, doctor, inspect, queue, send, serve, stats,
    topic, tx,
};

#[tokio::main]
async fn main() -> ExitCode {
    // Flags over FERRY_* variables over ferry.toml over built-in defaults (see config).
    let (cli, config) = match config::parse_or_report() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    // Diagnostics (transient backend errors, lease problems) go to stderr; RUST_LOG
    // raises the level. With --otel-endpoint, spans are exported too (see telemetry).
    let telemetry = match telemetry::init(cli.otel_endpoint.as_deref(), &cli.otel_service_name) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let code = match run(cli, &config).await {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    };
    telemetry.shutdown();
    code
}

async fn run(cli: Cli, config: &config::Config) -> ferry::Result<ExitCode> {
    // Commands that choose their own backend (and `doctor` its exit status).
    let command = match cli.command {
        Command::Config(c) => {
            return config::command::run(c, config).map(|()| ExitCode::SUCCESS);
        }
        Command::Demo(args) => return demo::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Relay(args) => {
            return commands::relay::run(args).await.map(|()| ExitCode::SUCCESS);
        }
        Command::Bench(args) => {
            return bench::run(&backend_url(cli.backend.as_deref())?, args)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Audit(args) => {
            let path = audit_path(cli.audit_log.as_deref(), cli.backend.as_deref())?;
            return audit::run(&path, args).map(|()| ExitCode::SUCCESS);
        }
        Command::Doctor(args) => {
            return doctor::run(&backend_url(cli.backend.as_deref())?, args).await;
        }
        // A plain Redis list: the command opens the Redis driver itself.
        Command::Consume(mut args) => match args.from_redis_list.take() {
            Some(key) => {
                let url = backend_url(cli.backend.as_deref())?;
                return consume_list::run(&url, key, args)
                    .await
                    .map(|()| ExitCode::SUCCESS);
            }
            None => Command::Consume(args),
        },
        other => other,
    };
    let url = backend_url(cli.backend.as_deref())?;
    let audit_log = audit_path(cli.audit_log.as_deref(), cli.backend.as_deref())?;
    audited::init(audit_log.clone());
    let driver = ferry::connect_async(&url).await?;
    let done = match command {
        Command::Queue(c) => queue::run(&*driver, c).await,
        Command::Topic(c) => topic::run(&*driver, c).await,
        Command::Send(a) => send::send(&*driver, a).await,
        Command::Publish(a) => send::publish(&*driver, a).await,
        Command::Consume(a) => consume::run(driver, a).await,
        Command::Dlq(c) => dlq::run(driver, c).await,
        Command::Stats(a) => stats::run(&*driver, a).await,
        Command::Tx(c) => tx::run(&*driver, c).await,
        Command::Inspect { queue, id, json } => inspect::run(&*driver, &queue, &id, json).await,
        Command::Serve(a) => serve::run(&url, driver, a, &audit_log, config).await,
        Command::Demo(_)
        | Command::Bench(_)
        | Command::Doctor(_)
        | Command::Config(_)
        | Command::Audit(_)
        | Command::Relay(_) => Ok(()),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// The audit log: `--audit-log` (or `FERRY_AUDIT_LOG`), else beside a `file:` backend.
fn audit_path(
    flag: Option<&std::path::Path>,
    backend: Option<&str>,
) -> ferry::Result<std::path::PathBuf> {
    match flag {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.to_path_buf()),
        _ => Ok(audit::default_path(&backend_url(backend)?)),
    }
}

/// The backend URL: the flag (or `FERRY_BACKEND`) unless empty, else what
/// [`ferry::backend_from_env`] finds (`REDIS_*` variables, then the default).
fn backend_url(flag: Option<&str>) -> ferry::Result<String> {
    match flag {
        Some(url) if !url.trim().is_empty() => Ok(url.to_string()),
        _ => ferry::backend_from_env(),
    }
}
