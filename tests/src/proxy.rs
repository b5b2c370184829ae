//! A TCP proxy the tests control, put between the edge and the hub's MQTT listener: it passes,
//! refuses, blackholes (a silent cut), slows, cuts and flaps the link on demand, and counts what
//! it did, so a test both injects a network fault and proves the fault really hit ("the edge
//! reconnected N times").
//!
//! It runs on its own thread with its own tokio runtime, so it keeps working while the test's
//! thread sleeps or blocks; the [`Proxy`] handle switches modes from any thread. Loopback only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use wangge_testkit::SplitMix64;

/// Largest chunk read from one side before it is handed to the other.
const CHUNK_BYTES_MAX: usize = 16 * 1024;
/// Chunks read but not yet delivered, per direction of a connection. When full, the proxy stops
/// reading, so the sender's kernel buffers fill as on a real congested link (memory stays bounded:
/// 64 × 16 KiB per direction).
const CHUNKS_QUEUED_MAX: usize = 64;
/// A `Slow` link delivers in slices of at most a tenth of a second's worth of bytes, so the
/// bandwidth is smooth rather than one burst per chunk.
const SLOW_SLICES_PER_S: u64 = 10;

/// What the link does right now. Applies to every connection, open or new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways as fast as the sockets go.
    Pass,
    /// The hub is unreachable: every open connection is reset (RST) when this mode is set, and
    /// each new one is accepted and reset at once (no port is given up, so no other process can
    /// take it while the "hub" is away).
    Refuse,
    /// A silent cut: connections stay open (new ones are accepted too) but nothing is forwarded in
    /// either direction, not even a close; only keepalives can tell. What was held is delivered
    /// when the mode changes back, as TCP would after a partition heals. (A reset, unlike a
    /// close, still ends the connection at once: a peer resets only with data unread, which a
    /// blackhole never delivers, so this does not arise with MQTT peers.)
    Blackhole,
    /// Half a silent cut: what the client sends is held (as in `Blackhole`) while what the
    /// upstream sends still reaches it. Between a hub and its broker: the hub receives batches
    /// and commits them, but its acks never leave.
    HoldUpstream,
    /// Each chunk is delivered no sooner than `latency` after it was read, and each direction of
    /// each connection carries at most `bytes_per_s`.
    Slow { latency: Duration, bytes_per_s: u64 },
}

/// What the proxy did so far; see [`Proxy::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted and forwarded (a reconnecting client adds one each time).
    pub accepted: u64,
    /// Connections reset on arrival because the mode was `Refuse`.
    pub refused: u64,
    /// Open connections reset by [`Proxy::cut_all`] (or by switching to `Refuse`).
    pub cut: u64,
    /// Connections open right now.
    pub open: u64,
    /// Bytes delivered client → upstream (edge → hub).
    pub bytes_up: u64,
    /// Bytes delivered upstream → client (hub → edge).
    pub bytes_down: u64,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    open: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A running proxy on 127.0.0.1:`port` forwarding to an upstream port; stopped when dropped.
pub struct Proxy {
    /// Where clients connect (point the edge's `[hub] port` here).
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Bumped by `cut_all`; every open connection resets when it changes.
    cuts: watch::Sender<u64>,
    stats: Arc<Stats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to 127.0.0.1:`upstream_port`, in `Pass`.
    pub fn start(upstream_port: u16) -> std::io::Result<Proxy> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        // Bound here, on port 0, so the port is ours before `start` returns (no free-port race).
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _in_runtime = rt.enter();
            TcpListener::from_std(std_listener)?
        };
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let (cuts, cuts_rx) = watch::channel(0u64);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let stats = Arc::new(Stats::default());
        let link = Link {
            upstream,
            mode: mode_rx,
            cuts: cuts_rx,
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || rt.block_on(accept_loop(listener, link, shutdown_rx)))?;
        Ok(Proxy {
            port,
            mode,
            cuts,
            stats,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Switches the link's behaviour; `Refuse` also resets every open connection.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Refuse {
            self.cut_all();
        }
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Resets (RST) every connection open now; returns how many were open. Clients may
    /// reconnect at once unless the mode says otherwise.
    pub fn cut_all(&self) -> u64 {
        let open = self.stats.open.load(Relaxed);
        self.cuts.send_modify(|generation| *generation += 1);
        open
    }

    /// Flaps the link for `total`: cuts every open connection, then again after a pause drawn
    /// from 2–5 s (seeded by `seed`, so a failing run can be replayed), until `total` has passed.
    /// Blocks the calling thread; returns the pauses it took, one per cut.
    pub fn flap(&self, seed: u64, total: Duration) -> Vec<Duration> {
        let mut rng = SplitMix64(seed);
        let until = Instant::now() + total;
        let mut pauses = Vec::new();
        loop {
            let pause = Duration::from_millis(2000 + rng.next_u64() % 3001);
            if Instant::now() + pause > until {
                break;
            }
            std::thread::sleep(pause);
            self.cut_all();
            pauses.push(pause);
        }
        pauses
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        let s = &self.stats;
        Counts {
            accepted: s.accepted.load(Relaxed),
            refused: s.refused.load(Relaxed),
            cut: s.cut.load(Relaxed),
            open: s.open.load(Relaxed),
            bytes_up: s.bytes_up.load(Relaxed),
            bytes_down: s.bytes_down.load(Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        // The runtime, and with it every connection, ends when the thread returns.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What every connection task needs to know.
#[derive(Clone)]
struct Link {
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    cuts: watch::Receiver<u64>,
    stats: Arc<Stats>,
}

async fn accept_loop(listener: TcpListener, link: Link, mut shutdown: oneshot::Receiver<()>) {
    loop {
        let client = tokio::select! {
            r = listener.accept() => match r {
                Ok((client, _)) => client,
                // Out of descriptors or the like: try again shortly rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        // Mark the cut generation as seen *before* reading the mode: `set_mode(Refuse)` writes
        // the mode first and cuts second, so a connection let through here is cut after all.
        let mut conn = link.clone();
        conn.cuts.borrow_and_update();
        if *conn.mode.borrow() == Mode::Refuse {
            link.stats.refused.fetch_add(1, Relaxed);
            reset(&client);
            continue;
        }
        link.stats.accepted.fetch_add(1, Relaxed);
        link.stats.open.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let stats = conn.stats.clone();
            connection(client, conn).await;
            stats.open.fetch_sub(1, Relaxed);
        });
    }
}

/// Forwards one client connection until both sides closed, one side broke, or it is cut.
async fn connection(mut client: TcpStream, mut link: Link) {
    let _ = client.set_nodelay(true);
    let mut server = tokio::select! {
        r = TcpStream::connect(link.upstream) => match r {
            Ok(s) => s,
            Err(_) => {
                reset(&client);
                return;
            }
        },
        _ = link.cuts.changed() => {
            link.stats.cut.fetch_add(1, Relaxed);
            reset(&client);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(
            client_read,
            server_write,
            (link.mode.clone(), Direction::Up),
            &link.stats.bytes_up,
        );
        let down = pump(
            server_read,
            client_write,
            (link.mode.clone(), Direction::Down),
            &link.stats.bytes_down,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            // A cut is looked at first: `cut_all` then `set_mode(Pass)` wakes both at once, and
            // a pump polled first would deliver what was held (acks a test wants lost).
            tokio::select! {
                biased;
                _ = link.cuts.changed() => break true,
                end = &mut up, if !up_done => {
                    if end == End::Broken {
                        break false;
                    }
                    up_done = true;
                }
                end = &mut down, if !down_done => {
                    if end == End::Broken {
                        break false;
                    }
                    down_done = true;
                }
            }
            if up_done && down_done {
                break false;
            }
        }
    };
    if cut {
        link.stats.cut.fetch_add(1, Relaxed);
        reset(&client);
        reset(&server);
    }
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The sender closed and the close was passed on.
    Closed,
    /// A read or write failed (reset by the peer): the whole connection is over.
    Broken,
}

/// Which way a pump copies: client → upstream, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Copies one direction: a reader stage queues timestamped chunks, a writer stage delivers them
/// as the mode allows (at once, held while blackholed, delayed and throttled while slow).
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    (mut mode, direction): (watch::Receiver<Mode>, Direction),
    delivered: &AtomicU64,
) -> End {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_QUEUED_MAX);
    let read = async move {
        // A body local (not just a capture), so the queue closes as soon as reading ends.
        let tx = tx;
        let mut buf = vec![0u8; CHUNK_BYTES_MAX];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => return End::Closed,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        return End::Broken; // the writer gave up
                    }
                }
                Err(_) => return End::Broken,
            }
        }
    };
    let write = async move {
        let mut rx = rx;
        // When the next byte may go out on a slow link.
        let mut next_free = Instant::now();
        while let Some((read_at, chunk)) = rx.recv().await {
            let Some(now_mode) = unless_held(&mut mode, direction).await else {
                return End::Broken;
            };
            let Mode::Slow {
                latency,
                bytes_per_s,
            } = now_mode
            else {
                if to.write_all(&chunk).await.is_err() {
                    return End::Broken;
                }
                delivered.fetch_add(chunk.len() as u64, Relaxed);
                continue;
            };
            let bytes_per_s = bytes_per_s.max(1);
            let slice = usize::try_from(bytes_per_s / SLOW_SLICES_PER_S)
                .unwrap_or(usize::MAX)
                .max(1);
            tokio::time::sleep_until((read_at + latency).into()).await;
            for piece in chunk.chunks(slice) {
                next_free = next_free.max(Instant::now());
                tokio::time::sleep_until(next_free.into()).await;
                if to.write_all(piece).await.is_err() {
                    return End::Broken;
                }
                delivered.fetch_add(piece.len() as u64, Relaxed);
                next_free += Duration::from_secs_f64(piece.len() as f64 / bytes_per_s as f64);
            }
        }
        // The sender closed (or broke): pass the close on, unless the link is silent.
        if unless_held(&mut mode, direction).await.is_none() {
            return End::Broken;
        }
        let _ = to.shutdown().await;
        End::Closed
    };
    tokio::pin!(read, write);
    tokio::select! {
        // A reset discards what was in flight, as TCP does; a close waits for the queue to drain.
        end = &mut read => match end {
            End::Broken => End::Broken,
            End::Closed => write.await,
        },
        // The writer ends only on failure or after the reader closed the queue.
        end = &mut write => end,
    }
}

/// Waits while the mode holds this direction; the mode that lets data through, or `None` when
/// the proxy is shutting down.
async fn unless_held(mode: &mut watch::Receiver<Mode>, direction: Direction) -> Option<Mode> {
    loop {
        let m = *mode.borrow_and_update();
        let held = m == Mode::Blackhole || (m == Mode::HoldUpstream && direction == Direction::Up);
        if !held {
            return Some(m);
        }
        mode.changed().await.ok()?;
    }
}

/// Closes with RST instead of FIN (linger 0), as a crashed host or a firewall reject does.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;

    /// An echo server on a free loopback port (threads live until the test process ends).
    fn echo_server() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    /// A proxy in front of a fresh echo server.
    fn echo_proxy() -> Proxy {
        Proxy::start(echo_server()).unwrap()
    }

    fn connect(proxy: &Proxy) -> StdStream {
        let s = StdStream::connect(("127.0.0.1", proxy.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        wangge_testkit::wait_for(what, Duration::from_secs(10), || f().then_some(())).unwrap();
    }

    fn echo(s: &mut StdStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        got
    }

    /// A connection through `proxy` that has echoed `msg`: live end to end.
    fn live_connection(proxy: &Proxy, msg: &[u8]) -> StdStream {
        let mut s = connect(proxy);
        assert_eq!(echo(&mut s, msg), msg);
        s
    }

    /// Whether `s` was reset or closed: a read sees the reset or end of stream.
    fn was_cut(s: &mut StdStream) -> bool {
        let mut buf = [0u8; 1];
        matches!(s.read(&mut buf), Err(_) | Ok(0))
    }

    #[test]
    fn pass_forwards_both_ways_and_counts_bytes() {
        let proxy = echo_proxy();
        let s = live_connection(&proxy, b"hello hub");
        // The count follows the write the client already saw: wait for it, don't race it.
        wait_until("9 bytes counted each way", || {
            let c = proxy.counts();
            (c.accepted, c.open, c.bytes_up, c.bytes_down) == (1, 1, 9, 9)
        });
        drop(s);
        wait_until("the closed connection to be counted", || {
            proxy.counts().open == 0
        });
    }

    #[test]
    fn refuse_resets_open_and_new_connections_until_pass() {
        let proxy = echo_proxy();
        let mut open = live_connection(&proxy, b"x");
        proxy.set_mode(Mode::Refuse);
        // The open connection is reset.
        assert!(was_cut(&mut open));
        let mut refused = connect(&proxy);
        let _ = refused.write_all(b"y");
        assert!(was_cut(&mut refused));
        let c = proxy.counts();
        assert_eq!((c.accepted, c.refused, c.cut), (1, 1, 1), "{c:?}");
        proxy.set_mode(Mode::Pass);
        assert_eq!(echo(&mut connect(&proxy), b"z"), b"z");
    }

    #[test]
    fn blackhole_holds_everything_and_delivers_it_when_the_link_heals() {
        let proxy = echo_proxy();
        let mut s = live_connection(&proxy, b"before");
        proxy.set_mode(Mode::Blackhole);
        s.write_all(b"held").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 4];
        let silent = s.read(&mut buf);
        assert!(
            matches!(&silent, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "nothing comes back through a blackhole: {silent:?}"
        );
        // A new connection is accepted but silent too.
        let mut late = connect(&proxy);
        late.write_all(b"late").unwrap();
        proxy.set_mode(Mode::Pass);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"held");
        late.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        assert_eq!(proxy.counts().accepted, 2);
    }

    #[test]
    fn hold_upstream_holds_what_the_client_sends_and_passes_what_comes_back() {
        // A server that speaks first (after a moment), then echoes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            conn.write_all(b"down").unwrap();
            let mut buf = [0u8; 2];
            if conn.read_exact(&mut buf).is_ok() {
                let _ = conn.write_all(&buf);
            }
        });
        let proxy = Proxy::start(port).unwrap();
        let mut s = connect(&proxy);
        proxy.set_mode(Mode::HoldUpstream);
        s.write_all(b"up").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"down", "the upstream's bytes pass");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut two = [0u8; 2];
        let silent = s.read(&mut two);
        assert!(
            matches!(&silent, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the client's bytes are held, so nothing is echoed: {silent:?}"
        );
        proxy.set_mode(Mode::Pass);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"up", "held bytes go out when the link heals");
    }

    #[test]
    fn slow_delivers_every_byte_in_order() {
        let proxy = echo_proxy();
        proxy.set_mode(Mode::Slow {
            latency: Duration::from_millis(50),
            bytes_per_s: 50_000,
        });
        let msg: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = connect(&proxy);
        let t0 = Instant::now();
        assert_eq!(echo(&mut s, &msg), msg);
        // A figure, not an assertion: 20 KB each way at 50 KB/s plus 2 × 50 ms.
        println!("20 KB echoed through a 50 KB/s link in {:?}", t0.elapsed());
    }

    #[test]
    fn cut_all_resets_open_connections_and_clients_may_reconnect() {
        let proxy = echo_proxy();
        let mut a = live_connection(&proxy, b"a");
        let mut b = live_connection(&proxy, b"b");
        assert_eq!(proxy.cut_all(), 2);
        assert!(was_cut(&mut a));
        assert!(was_cut(&mut b));
        wait_until("both cuts to be counted", || proxy.counts().cut == 2);
        assert_eq!(echo(&mut connect(&proxy), b"c"), b"c");
        assert_eq!(proxy.counts().accepted, 3);
    }

    #[test]
    fn the_flapping_schedule_is_seeded() {
        let draw = |seed| {
            let mut r = SplitMix64(seed);
            (0..8).map(|_| r.next_u64() % 3001).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
