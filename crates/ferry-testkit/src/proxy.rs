//! A TCP fault proxy for tests: sits between a client and a server on loopback and,
//! on command, cuts connections, stalls them, or refuses new ones.
//!
//! Fault tests of a network backend need the faults a real network has (a connection
//! reset mid-command, a link that goes silent without closing, a server that accepts and
//! hangs up) at moments the test chooses, in the test's own process, so the test can
//! write a ledger `fault` line at the exact point it injects one. Written by hand because
//! no maintained crate does this in-process: toxiproxy needs its own server and an HTTP
//! API, and the Rust ports of it are unmaintained; what is needed here is ~200 lines of
//! tokio.
//!
//! Faults:
//!
//! - [`Proxy::cut`] closes every current connection both ways (each side sees EOF) and
//!   keeps accepting new ones, like a server or middlebox restart;
//! - [`Proxy::blackhole`] makes every current connection silent for good: no byte moves
//!   in either direction and nothing is closed, so the client sees neither data nor
//!   EOF nor an error (a half-open link: the server host vanished, a firewall dropped
//!   the connection's state). New connections are accepted but hang while it is on;
//!   turned off, new connections (and the held ones) go through again, but the
//!   connections it caught stay silent until [`cut`](Proxy::cut) or the end of the proxy,
//!   so a client recovers only if it notices the silence and reconnects.
//! - [`Proxy::stall`] is a partition that heals: while on, nothing moves and new
//!   connections hang; turned off, the bytes held back are delivered in order on the
//!   same connections, as TCP delivers retransmitted data after an outage (so commands
//!   the client already gave up on reach the server late).
//! - [`Proxy::refuse`] accepts new connections and closes them at once (existing ones
//!   carry on).
//!
//! [`Proxy::connections`] counts connections accepted so far, so a test can assert that
//! a client reconnects a bounded number of times instead of spinning. Dropping the
//! [`Proxy`] stops accepting and closes every connection.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = ferry_testkit::proxy::Proxy::start(server.local_addr()?).await?;
//! let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
//! let (mut upstream, _) = server.accept().await?;
//! client.write_all(b"ping").await?;
//! let mut buf = [0u8; 4];
//! upstream.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! proxy.cut();
//! assert_eq!(client.read(&mut buf).await?, 0, "the client sees EOF");
//! # Ok::<(), std::io::Error>(()) }).unwrap();
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy is told to do; every connection task watches it.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Hold new connections; current ones are silenced for good.
    blackhole: bool,
    /// Incremented each time the blackhole is turned on: a connection that was
    /// forwarding under an older value is silent for good.
    blackhole_epoch: u64,
    /// Stop forwarding bytes (to resume later); hold new connections.
    stall: bool,
    /// Close new connections at once.
    refuse: bool,
    /// Incremented by each cut: a connection accepted under an older value is closed.
    cut_generation: u64,
    /// The proxy was dropped: close everything.
    stopped: bool,
}

/// A TCP proxy on `127.0.0.1` that injects faults on command; see the module docs.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    connections: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target`, listening on a free port of `127.0.0.1` (see
    /// [`addr`](Self::addr)). Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, watcher) = watch::channel(State::default());
        let connections = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            watcher,
            Arc::clone(&connections),
        ));
        Ok(Proxy {
            addr,
            state,
            connections,
            accept,
        })
    }

    /// The address clients connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every current connection both ways; new connections are accepted as usual.
    pub fn cut(&self) {
        self.state
            .send_modify(|s| s.cut_generation = s.cut_generation.wrapping_add(1));
    }

    /// Turns the blackhole on (every current connection goes silent for good, nothing is
    /// closed, new connections hang) or off (new and held connections go through; the
    /// silenced ones stay silent).
    pub fn blackhole(&self, on: bool) {
        self.state.send_modify(|s| {
            if on && !s.blackhole {
                s.blackhole_epoch = s.blackhole_epoch.wrapping_add(1);
            }
            s.blackhole = on;
        });
    }

    /// Turns the stall on (no byte moves, nothing is closed, new connections hang) or
    /// off (held bytes are delivered in order, held connections go through).
    pub fn stall(&self, on: bool) {
        self.state.send_modify(|s| s.stall = on);
    }

    /// Turns refusing on (new connections are accepted and closed at once) or off.
    pub fn refuse(&self, on: bool) {
        self.state.send_modify(|s| s.refuse = on);
    }

    /// How many connections were accepted so far (refused and held ones included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.send_modify(|s| s.stopped = true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    watcher: watch::Receiver<State>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: the
                // listener itself is fine; try again shortly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let now = *watcher.borrow();
        if now.refuse || now.stopped {
            drop(client);
            continue;
        }
        let _ = client.set_nodelay(true);
        tokio::spawn(serve(client, target, watcher.clone(), now.cut_generation));
    }
}

/// Forwards one connection until either side closes, an error, a cut or the end of
/// the proxy; returning drops (closes) both sockets.
async fn serve(
    client: TcpStream,
    target: SocketAddr,
    mut watcher: watch::Receiver<State>,
    generation: u64,
) {
    let ended = ended(watcher.clone(), generation);
    tokio::pin!(ended);
    // A connection accepted during a blackhole or stall hangs here, before reaching the
    // server.
    let admitted = tokio::select! {
        () = &mut ended => return,
        open = watcher.wait_for(|s| !s.blackhole && !s.stall) => open.is_ok(),
    };
    if !admitted {
        return;
    }
    let upstream = tokio::select! {
        () = &mut ended => return,
        up = TcpStream::connect(target) => match up {
            Ok(up) => up,
            Err(_) => return,
        },
    };
    // From here on this connection dies with the next blackhole.
    let epoch = watcher.borrow().blackhole_epoch;
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (up_read, up_write) = upstream.into_split();
    let both = async {
        tokio::try_join!(
            pump(client_read, up_write, watcher.clone(), epoch),
            pump(up_read, client_write, watcher.clone(), epoch),
        )
    };
    tokio::select! {
        () = &mut ended => {}
        _ = both => {}
    }
}

/// Resolves when the connection must be closed: a cut after it was accepted, or the
/// proxy was dropped.
async fn ended(mut watcher: watch::Receiver<State>, generation: u64) {
    let _ = watcher
        .wait_for(|s| s.stopped || s.cut_generation != generation)
        .await;
}

/// Copies one direction of a connection established under blackhole `epoch`. While
/// stalled nothing is read and bytes already read are held; after a blackhole nothing
/// moves again. At EOF the other side's write half is shut down (half-close passes
/// through).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut watcher: watch::Receiver<State>,
    epoch: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        open(&mut watcher, epoch).await?;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        // A fault that began while this read was pending holds these bytes too.
        open(&mut watcher, epoch).await?;
        to.write_all(&buf[..n]).await?;
    }
}

/// Waits until bytes may move on a connection of blackhole `epoch` (forever once a
/// blackhole caught it); an error once the proxy is gone.
async fn open(watcher: &mut watch::Receiver<State>, epoch: u64) -> io::Result<()> {
    match watcher
        .wait_for(|s| !s.stall && !s.blackhole && s.blackhole_epoch == epoch)
        .await
    {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "proxy stopped",
        )),
    }
}

#[cfg(test)]
mod tests;
