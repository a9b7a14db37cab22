//! `rediss://`: the driver speaks TLS to a local redis-server started with a
//! self-signed certificate (made with the `openssl` command). Verification against the
//! system roots cannot accept a self-signed certificate, so the test connects with
//! redis-rs's `#insecure` fragment; that a plain `redis://` connection to the TLS port
//! fails shows the traffic really is TLS.

mod support;

use std::process::Command;

use ferry_core::{Driver, Message, QueueOptions, ReceiveOptions, Topology};
use ferry_redis::{RedisConfig, RedisDriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_sends_and_receives_over_tls() {
    let dir = support::TempDir::new("tls");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (is it installed?)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = support::free_port();
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &cert.display().to_string(),
        "--tls-key-file",
        &key.display().to_string(),
        "--tls-ca-cert-file",
        &cert.display().to_string(),
        "--tls-auth-clients",
        "no",
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.path().display().to_string(),
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _server = support::Server::start_tls(port, dir.path(), &args, &cert);

    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let d = RedisDriver::connect_with(RedisConfig::new(url).with_prefix("ferry-test"))
        .await
        .expect("connect over TLS");
    let q = ferry_testkit::unique_queue("tls");
    d.create_queue(&q, QueueOptions::default())
        .await
        .expect("create");
    d.send(&q, vec![Message::new("secret").with_id("t1")])
        .await
        .expect("send");
    let got = d
        .receive(&q, ReceiveOptions::max(1))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.as_ref(), b"secret");
    d.ack(&got[0].receipt).await.expect("ack");

    let mut plain = RedisConfig::new(format!("redis://127.0.0.1:{port}"));
    plain.connection_timeout = std::time::Duration::from_secs(2);
    plain.response_timeout = std::time::Duration::from_secs(2);
    assert!(
        RedisDriver::connect_with(plain).await.is_err(),
        "a plain connection to the TLS port must fail"
    );
}
