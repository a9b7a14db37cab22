//! The HTTP API beside direct driver calls, on the same embedded store, in one run.
//!
//! Both sides send N messages of SIZE bytes in batches of 100, then receive them 100 at
//! a time and ack each batch in one call (`Driver::settle`, `POST /api/ack` with
//! `receipts`). The HTTP side runs the real router on a loopback socket with a bearer
//! token, JSON bodies and every guard on (the rate limit off), so the ratio is what the
//! API layer costs. Rounds alternate direct/HTTP so the machine's noise hits both.
//!
//! ```sh
//! cargo run --release -p ferry-http --example http_bench -- [N] [SIZE] [ROUNDS]
//! ```

use std::sync::Arc;
use std::time::Instant;

use ferry_core::{Driver, Message, QueueName, QueueOptions, ReceiveOptions, Settlement};
use ferry_http::{Role, Server, ServerConfig, TokenConfig};
use serde_json::{Value, json};

const BATCH: usize = 100;
const TOKEN: &str = "bench-token-0123456789";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

async fn direct(driver: Arc<dyn Driver>, n: usize, size: usize) -> Res<(f64, f64)> {
    let q = QueueName::new("bench")?;
    driver.create_queue(&q, QueueOptions::default()).await?;
    let payload = "x".repeat(size);
    let t = Instant::now();
    for _ in 0..n / BATCH {
        let batch = (0..BATCH).map(|_| Message::new(payload.clone())).collect();
        driver.send(&q, batch).await?;
    }
    let send = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let got = driver.receive(&q, ReceiveOptions::max(BATCH)).await?;
        done += got.len();
        driver
            .settle(
                got.into_iter()
                    .map(|d| Settlement::ack(d.receipt))
                    .collect(),
            )
            .await?;
    }
    Ok((send, n as f64 / t.elapsed().as_secs_f64()))
}

async fn http(driver: Arc<dyn Driver>, n: usize, size: usize) -> Res<(f64, f64)> {
    let config = ServerConfig::default()
        .with_token(TokenConfig::new("bench", TOKEN, Role::Admin)?)
        .with_rate_limit(0)
        .with_max_body_bytes(16 * 1024 * 1024);
    let server = Server::builder(driver).config(config).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = ferry_http::router(server);
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    post("/api/queues", json!({"name": "bench"}))
        .await?
        .error_for_status()?;
    let payload = "x".repeat(size);
    let t = Instant::now();
    for _ in 0..n / BATCH {
        let messages: Vec<Value> = (0..BATCH).map(|_| json!({"payload": payload})).collect();
        post("/api/queues/bench/messages", json!({"messages": messages}))
            .await?
            .error_for_status()?;
    }
    let send = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let got: Value = post("/api/queues/bench/receive", json!({"max": BATCH}))
            .await?
            .error_for_status()?
            .json()
            .await?;
        let receipts: Vec<Value> = got["deliveries"]
            .as_array()
            .map(|a| a.iter().map(|d| d["receipt"].clone()).collect())
            .unwrap_or_default();
        done += receipts.len();
        if !receipts.is_empty() {
            post("/api/ack", json!({"receipts": receipts}))
                .await?
                .error_for_status()?;
        }
    }
    Ok((send, n as f64 / t.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> Res<()> {
    let n = arg(1, 20_000).max(BATCH) / BATCH * BATCH;
    let size = arg(2, 100);
    let rounds = arg(3, 2);
    for round in 0..rounds {
        for side in ["direct", "http"] {
            let dir = tempfile::tempdir()?;
            let driver: Arc<dyn Driver> = Arc::new(ferry_embedded::EmbeddedDriver::open(
                dir.path().join("data"),
            )?);
            let (send, consume) = match side {
                "direct" => direct(driver, n, size).await?,
                _ => http(driver, n, size).await?,
            };
            println!(
                "round={round} side={side} messages={n} size={size} send_per_s={send:.0} receive_ack_per_s={consume:.0}"
            );
        }
    }
    Ok(())
}
