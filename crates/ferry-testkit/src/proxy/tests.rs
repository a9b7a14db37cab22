//! The proxy against an echo server on loopback. "Nothing arrives" is checked by waiting
//! a fixed time for bytes that must not come; every positive check waits with a
//! deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Proxy;

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// Deadline of every expected event.
const LIMIT: Duration = Duration::from_secs(10);

/// An echo server on loopback; returns its address.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn started() -> Proxy {
    Proxy::start(echo_server().await)
        .await
        .expect("start proxy")
}

async fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(proxy.addr()).await.expect("connect")
}

/// Writes `msg` and reads the same number of bytes back.
async fn round_trip(sock: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    sock.write_all(msg).await.expect("write");
    read_n(sock, msg.len()).await
}

async fn read_n(sock: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(LIMIT, sock.read_exact(&mut buf))
        .await
        .expect("reply within the deadline")
        .expect("read");
    buf
}

/// True if the connection ends (EOF or reset) within the deadline.
async fn closes(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(LIMIT, sock.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// True if nothing at all (no byte, no EOF) arrives during [`QUIET`].
async fn silent(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(QUIET, sock.read(&mut buf))
        .await
        .is_err()
}

/// Waits until the proxy has accepted `n` connections (a connect returns once the
/// kernel queued it, before the proxy's accept).
async fn accepted(proxy: &Proxy, n: usize) {
    crate::eventually(LIMIT, "the proxy accepts", || async {
        (proxy.connections() >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn forwards_both_ways() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut b, b"world").await, b"world");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut a, &big).await, big);
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn cut_closes_current_connections_and_accepts_new_ones() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"1").await, b"1");
    assert_eq!(round_trip(&mut b, b"2").await, b"2");
    proxy.cut();
    assert!(closes(&mut a).await, "first connection closed");
    assert!(closes(&mut b).await, "second connection closed");
    let mut c = connect(&proxy).await;
    assert_eq!(round_trip(&mut c, b"after").await, b"after");
    accepted(&proxy, 3).await;
}

#[tokio::test]
async fn stall_is_silent_then_heals_in_order() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"before").await, b"before");
    proxy.stall(true);
    a.write_all(b"during-1").await.expect("write");
    a.write_all(b"during-2").await.expect("write");
    assert!(silent(&mut a).await, "no echo and no close while stalled");
    // A new connection is accepted but hangs.
    let mut held = connect(&proxy).await;
    held.write_all(b"held").await.expect("write");
    assert!(silent(&mut held).await, "a new connection hangs too");
    accepted(&proxy, 2).await;
    proxy.stall(false);
    assert_eq!(read_n(&mut a, 16).await, b"during-1during-2");
    assert_eq!(read_n(&mut held, 4).await, b"held");
    assert_eq!(round_trip(&mut a, b"after").await, b"after");
}

#[tokio::test]
async fn blackhole_silences_current_connections_for_good() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"before").await, b"before");
    proxy.blackhole(true);
    a.write_all(b"lost").await.expect("write");
    assert!(
        silent(&mut a).await,
        "no echo and no close while blackholed"
    );
    let mut held = connect(&proxy).await;
    held.write_all(b"held").await.expect("write");
    assert!(silent(&mut held).await, "a new connection hangs");
    accepted(&proxy, 2).await;
    proxy.blackhole(false);
    // New and held connections go through; the one caught stays silent, not closed.
    assert_eq!(read_n(&mut held, 4).await, b"held");
    let mut b = connect(&proxy).await;
    assert_eq!(round_trip(&mut b, b"fresh").await, b"fresh");
    assert!(silent(&mut a).await, "the caught connection stays silent");
    // A second blackhole catches the connections made since.
    proxy.blackhole(true);
    proxy.blackhole(false);
    b.write_all(b"x").await.expect("write");
    assert!(silent(&mut b).await, "caught by the second blackhole");
    proxy.cut();
    assert!(closes(&mut a).await, "a cut closes silenced connections");
    assert!(closes(&mut b).await, "a cut closes silenced connections");
}

#[tokio::test]
async fn cut_during_blackhole_kills_the_link_for_good() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"x").await, b"x");
    proxy.blackhole(true);
    a.write_all(b"lost").await.expect("write");
    let mut held = connect(&proxy).await;
    accepted(&proxy, 2).await;
    proxy.cut();
    assert!(
        closes(&mut a).await,
        "blackholed connection closed by the cut"
    );
    assert!(closes(&mut held).await, "held connection closed by the cut");
    proxy.blackhole(false);
    let mut b = connect(&proxy).await;
    assert_eq!(round_trip(&mut b, b"fresh").await, b"fresh");
}

#[tokio::test]
async fn refuse_closes_new_connections_only() {
    let proxy = started().await;
    let mut a = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    proxy.refuse(true);
    for _ in 0..3 {
        let mut r = connect(&proxy).await;
        assert!(closes(&mut r).await, "refused connection closed at once");
    }
    assert_eq!(round_trip(&mut a, b"still").await, b"still");
    accepted(&proxy, 4).await;
    proxy.refuse(false);
    let mut b = connect(&proxy).await;
    assert_eq!(round_trip(&mut b, b"b").await, b"b");
    assert_eq!(proxy.connections(), 5);
}

#[tokio::test]
async fn drop_closes_everything() {
    let proxy = started().await;
    let addr = proxy.addr();
    let mut a = connect(&proxy).await;
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    proxy.blackhole(true);
    let mut held = connect(&proxy).await;
    accepted(&proxy, 2).await;
    drop(proxy);
    assert!(
        closes(&mut a).await,
        "connection closed when the proxy is dropped"
    );
    assert!(closes(&mut held).await, "held connection closed too");
    // The listener is gone (its port may be reused later, but not this instant).
    let refused = tokio::time::timeout(LIMIT, TcpStream::connect(addr)).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "no one listens any more: {refused:?}"
    );
}
