//! ferry on RabbitMQ beside a raw lapin loop with the same settings, in one run.
//!
//! Both sides publish N messages of SIZE bytes to a durable classic queue with
//! `x-max-priority` 9 (what a ferry queue is), persistent
//! (`delivery_mode` 2), with the mandatory flag, in batches of BATCH whose publisher
//! confirms are awaited before the next batch; then receive them and ack each one.
//! Raw lapin consumes with `basic.consume` and a prefetch of BATCH; ferry with
//! `Driver::receive(max BATCH)` and `settle`. Rounds alternate raw/ferry so the shared
//! machine's noise hits both.
//!
//! ```sh
//! cargo run --release -p ferry-amqp --example bench -- [N] [SIZE] [ROUNDS] [URL]
//! ```
//!
//! Prints one line per side and round: `side=raw send_per_s=… receive_ack_per_s=…`.

use std::time::Instant;

use ferry_amqp::AmqpDriver;
use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Settlement, Topology};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const BATCH: usize = 100;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

async fn raw(url: &str, n: usize, size: usize, round: usize) -> Res<(f64, f64)> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = format!("bench.raw.{}.{round}", std::process::id());
    // The same queue arguments as a ferry queue (a classic queue with priorities).
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(9));
    ch.queue_declare(
        &queue,
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await?;
    let payload = vec![b'x'; size];
    let props = BasicProperties::default().with_delivery_mode(2);
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let mut confirms = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(n - sent) {
            let c = ch
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    props.clone(),
                )
                .await?;
            confirms.push(c);
        }
        for c in confirms {
            let c = c.await?;
            if !c.is_ack() || c.take_message().is_some() {
                return Err("raw publish not confirmed".into());
            }
            sent += 1;
        }
    }
    let send_rate = n as f64 / start.elapsed().as_secs_f64();

    let consume_ch = conn.create_channel().await?;
    consume_ch
        .basic_qos(BATCH as u16, BasicQosOptions::default())
        .await?;
    let mut consumer = consume_ch
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        let Some(d) = consumer.next().await else {
            return Err("raw consumer ended".into());
        };
        d?.ack(BasicAckOptions::default()).await?;
        got += 1;
    }
    let receive_rate = n as f64 / start.elapsed().as_secs_f64();
    ch.queue_delete(&queue, QueueDeleteOptions::default())
        .await?;
    conn.close(200, "done").await?;
    Ok((send_rate, receive_rate))
}

async fn ferry(url: &str, n: usize, size: usize, round: usize) -> Res<(f64, f64)> {
    let d = AmqpDriver::connect(url).await?;
    let q = ferry_core::QueueName::new(format!("bench-{}-{round}", std::process::id()))?;
    d.create_queue(&q, QueueOptions::default()).await?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<Message> = (0..BATCH.min(n - sent))
            .map(|_| Message::new(payload.clone()))
            .collect();
        sent += d.send(&q, batch).await?.enqueued as usize;
    }
    let send_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        let part = d
            .receive(
                &q,
                ReceiveOptions::max(BATCH).with_wait(std::time::Duration::from_secs(1)),
            )
            .await?;
        got += part.len();
        let settle: Vec<Settlement> = part
            .into_iter()
            .map(|p| Settlement::ack(p.receipt))
            .collect();
        for r in d.settle(settle).await? {
            r?;
        }
    }
    let receive_rate = n as f64 / start.elapsed().as_secs_f64();
    d.delete_queue(&q).await?;
    Ok((send_rate, receive_rate))
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(100_000), |s| s.parse())?;
    let size: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    println!("messages={n} size={size} batch={BATCH} rounds={rounds}");
    for round in 0..rounds {
        let (s, r) = raw(&url, n, size, round).await?;
        println!("round={round} side=raw send_per_s={s:.0} receive_ack_per_s={r:.0}");
        let (fs, fr) = ferry(&url, n, size, round).await?;
        println!(
            "round={round} side=ferry send_per_s={fs:.0} receive_ack_per_s={fr:.0} ratio_send={:.2} ratio_receive={:.2}",
            fs / s,
            fr / r
        );
    }
    Ok(())
}
