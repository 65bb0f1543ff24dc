//! One proxied connection: two links (client → upstream and upstream →
//! client), each a pump that reads its source, runs the bytes through its
//! toxic chain and writes them to its destination.
//!
//! Each pump is its own task (as each direction is its own goroutine in
//! Toxiproxy), so a byte arriving in one direction wakes only that pump; the
//! two share nothing but a few cancellation flags. A pump reads and writes
//! without blocking for as long as it can, and only then waits (on
//! readiness, on the earliest toxic deadline, on a change of the proxy's
//! toxics, or on a close), so a link with no toxics is a plain copy loop with
//! no channel hop.
//!
//! How a link ends follows Toxiproxy:
//! - the source sends FIN: the chain drains, then the destination gets FIN
//!   (the other direction carries on, so half-closed exchanges work);
//! - a toxic closes the stream (`timeout`, `limit_data`) or the source fails:
//!   the chain drains, the destination is shut, and the other direction stops
//!   reading, drains its own chain and shuts its destination too;
//! - `reset_peer` fires: both sockets are closed with linger 0 (RST);
//! - the proxy is disabled, changed or deleted: both sockets are closed.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf, BytesMut};
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::chain::{Chain, Snapshot};
use crate::metrics::LinkCounters;
use crate::seed;
use crate::toxics::{Chunk, End, Item};
use crate::Stream;

/// Bytes read per read call: Go's `io.Copy` buffer, as Toxiproxy uses.
const READ_SIZE: usize = 32 * 1024;

/// Reads per wake-up before the pump moves on to writing, so one busy source
/// cannot keep its chain from draining.
const READS_PER_TURN: usize = 16;

/// Busy turns (progress without waiting) before the pump yields to the
/// runtime, so a fast link cannot starve the others.
const TURNS_BEFORE_YIELD: usize = 64;

/// What a connection needs from its proxy.
pub(crate) struct ConnContext {
    pub(crate) proxy: Arc<str>,
    pub(crate) upstream: Arc<str>,
    /// Seed for this connection, derived from the proxy's seed and the
    /// connection's position in accept order.
    pub(crate) seed: u64,
    pub(crate) toxics: watch::Receiver<Arc<Snapshot>>,
    pub(crate) upstream_counters: LinkCounters,
    pub(crate) downstream_counters: LinkCounters,
    /// Cancelled when the proxy stops.
    pub(crate) cancel: CancellationToken,
    /// Counts this connection among the proxy's live ones; each pump holds
    /// a clone until it is done (a token rather than a tracked future,
    /// whose `poll` would be one more call on every wake-up).
    pub(crate) tracked: TaskTrackerToken,
}

/// Connects to the upstream for one accepted client and starts the two
/// pumps, each a task of its own that runs until its direction is done.
pub(crate) async fn serve(client: TcpStream, ctx: ConnContext) {
    let connect = TcpStream::connect(&*ctx.upstream);
    let server = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        result = connect => match result {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(proxy = %ctx.proxy, upstream = %ctx.upstream, error = %e,
                    "cannot reach upstream; closing client");
                return;
            }
        },
    };
    // Go's net package sets TCP_NODELAY by default; without it small writes
    // would wait for Nagle and every hop would add delay.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let abort = ctx.cancel.child_token();
    // Each is cancelled when its pump has closed its destination for good, so
    // the other pump knows its source is gone.
    let upstream_closed = CancellationToken::new();
    let downstream_closed = CancellationToken::new();
    let now = Instant::now();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();

    let snapshot = ctx.toxics.borrow().clone();
    let up = Pump {
        src: client_read,
        dst: server_write,
        chain: Chain::new(Stream::Upstream, seed::mix(ctx.seed, 0), &snapshot, now),
        toxics: ctx.toxics.clone(),
        counters: ctx.upstream_counters,
        abort: abort.clone(),
        source_gone: downstream_closed.clone(),
        closed: upstream_closed.clone(),
        _tracked: ctx.tracked.clone(),
    };
    let down = Pump {
        src: server_read,
        dst: client_write,
        chain: Chain::new(Stream::Downstream, seed::mix(ctx.seed, 1), &snapshot, now),
        toxics: ctx.toxics,
        counters: ctx.downstream_counters,
        abort,
        source_gone: upstream_closed,
        closed: downstream_closed,
        _tracked: ctx.tracked,
    };
    drop(snapshot);
    // Neither is awaited here: a task that only waited for the pumps would
    // put one more future between the runtime and the upstream pump on each
    // of its wake-ups. Each socket closes when the last pump holding a half
    // of it is done, and the proxy stops counting the connection then too.
    tokio::spawn(up.run());
    tokio::spawn(down.run());
}

/// Waits for the proxy's toxics to change; hands the receiver back.
async fn next_change(
    mut rx: watch::Receiver<Arc<Snapshot>>,
) -> (
    watch::Receiver<Arc<Snapshot>>,
    Result<(), watch::error::RecvError>,
) {
    let changed = rx.changed().await;
    (rx, changed)
}

/// Why the pass-through loop handed back to the pump's loop.
enum Handback {
    /// A signal fired, the outbox took bytes or the source ended: the turn
    /// starts again.
    Changed,
    /// The task's waker is not the one registered with the signals: the
    /// pump's wait registers it.
    NewWaker,
}

/// What one read and write on the pass-through did.
enum Step {
    /// The source has nothing now (this task is registered for more).
    Pending,
    /// The source ended (or failed): the end is in the outbox.
    Ended,
    /// The destination took part of the bytes: the rest is in the outbox.
    Backlog,
    /// The destination took everything; `short` if the read came back short
    /// of the buffer (the source is drained).
    Moved { short: bool },
}

/// What ended a pump's wait.
enum Woke {
    Aborted,
    SourceGone,
    Toxics(
        watch::Receiver<Arc<Snapshot>>,
        Result<(), watch::error::RecvError>,
    ),
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Timer,
}

/// The waker a pump's signals (abort, source gone, toxics changed) are
/// polled with: it records that one fired, then wakes the pump's task.
struct ControlWake {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ControlWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

struct Pump {
    src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    chain: Chain,
    toxics: watch::Receiver<Arc<Snapshot>>,
    counters: LinkCounters,
    /// Ends both pumps at once (proxy stopped, reset, write failure).
    abort: CancellationToken,
    /// The other pump closed this pump's source socket.
    source_gone: CancellationToken,
    /// Cancelled by this pump when it closes its destination for good.
    closed: CancellationToken,
    /// Keeps the connection counted by its proxy while this pump runs.
    _tracked: TaskTrackerToken,
}

impl Pump {
    async fn run(mut self) {
        let end = self.pump().await;
        self.finish(end).await;
    }

    /// Moves bytes until the stream ends (`Some`) or the connection is
    /// aborted (`None`).
    async fn pump(&mut self) -> Option<End> {
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut source_done = false;
        let mut toxics_open = true;
        let mut toxics_changed = false;
        let mut timer: Pin<Box<Sleep>> = Box::pin(sleep_until(Instant::now()));
        let mut timer_at: Option<Instant> = None;
        let mut busy_turns = 0usize;
        // The pass-through buffer: with no toxic on this direction, bytes go
        // from the source straight to the destination through it, with no
        // allocation or timestamp per chunk.
        let mut plain = vec![0u8; READ_SIZE];
        // Made once: a fresh cancellation future per wait would register
        // with (and leave) its token every time the pump sleeps.
        let mut aborted = std::pin::pin!(self.abort.clone().cancelled_owned());
        let mut gone = std::pin::pin!(self.source_gone.clone().cancelled_owned());
        // Likewise the wait for a change of toxics, on its own receiver.
        let mut change = Box::pin(next_change(self.toxics.clone()));
        // The three signals above are polled with this waker, which notes
        // that one of them fired before it wakes the pump.
        let control = Arc::new(ControlWake {
            fired: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let control_waker = Waker::from(control.clone());
        // The task waker last registered in `control`.
        let mut registered: Option<Waker> = None;

        loop {
            if toxics_changed || (toxics_open && self.toxics.has_changed().unwrap_or(false)) {
                toxics_changed = false;
                let snapshot = self.toxics.borrow_and_update().clone();
                self.chain.reconcile(&snapshot, Instant::now());
            }

            let mut progressed = false;
            let mut reads = 0;
            let plain_path = self.chain.passes_through();
            if plain_path
                && !source_done
                && registered.is_some()
                && !control.fired.load(Ordering::Acquire)
            {
                // Stays in the pass-through loop for as long as nothing
                // needs the rest of this one.
                let fired = &control.fired;
                let waker = registered.as_ref();
                let through =
                    poll_fn(|cx| self.pass_through(cx, &mut plain, &mut source_done, fired, waker));
                match through.await {
                    None => return None,
                    // The chain or the source may have changed: this turn's
                    // `plain_path` no longer holds.
                    Some(Handback::Changed) => continue,
                    Some(Handback::NewWaker) => {}
                }
            }
            if plain_path {
                // Polled for a real waker: a read that would block leaves
                // this task registered on the socket, as the wait below does.
                let copied =
                    poll_fn(|cx| Poll::Ready(self.copy_plain(cx, &mut plain, &mut source_done)));
                match copied.await {
                    // Drained: the source said it would block, so go and
                    // wait rather than ask it again at once.
                    Some((moved, drained)) => progressed = moved && !drained,
                    None => return None,
                }
            }
            while !plain_path && !source_done && reads < READS_PER_TURN && self.chain.can_accept() {
                reads += 1;
                buf.reserve(READ_SIZE);
                match self.src.try_read_buf(&mut buf) {
                    Ok(0) => {
                        source_done = true;
                        self.chain.push(Item::End(End::Eof));
                    }
                    Ok(n) => {
                        self.counters.received(n);
                        let data = buf.split().freeze();
                        self.chain.push(Item::Data(Chunk {
                            data,
                            at: Instant::now(),
                        }));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "source failed; closing the link");
                        source_done = true;
                        self.chain.push(Item::End(End::Close));
                    }
                }
                progressed = true;
            }

            // A pass-through chain has no stage to advance (and needs no clock).
            let wake = if plain_path {
                None
            } else {
                self.chain.advance(Instant::now())
            };

            loop {
                match self.chain.outbox.front_mut() {
                    None => break,
                    Some(Item::Data(chunk)) => match self.dst.try_write(&chunk.data) {
                        Ok(n) => {
                            self.counters.sent(n);
                            progressed = true;
                            if n >= chunk.data.len() {
                                self.chain.outbox.pop_front();
                            } else {
                                chunk.data.advance(n);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "destination failed; closing the connection");
                            return None;
                        }
                    },
                    Some(Item::End(end)) => return Some(*end),
                }
            }

            if progressed {
                busy_turns += 1;
                if busy_turns >= TURNS_BEFORE_YIELD {
                    busy_turns = 0;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            busy_turns = 0;

            if wake != timer_at {
                timer_at = wake;
                if let Some(at) = wake {
                    timer.as_mut().reset(at);
                }
            }
            let want_read = !source_done && self.chain.can_accept();
            let want_write = matches!(self.chain.outbox.front(), Some(Item::Data(_)));

            let woke = poll_fn(|cx| {
                // The signals first, as they outrank the sockets; but only
                // when one of them has woken the pump (or on the first
                // wait), so a wake-up by a socket costs a private atomic or
                // two here, not a lock on each token and on the proxy's
                // watch. (The pass-through loop skips this wait altogether.)
                control.task.register(cx.waker());
                if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    registered = Some(cx.waker().clone());
                }
                let fired = control.fired.swap(false, Ordering::AcqRel);
                if fired {
                    let mut signals = Context::from_waker(&control_waker);
                    let signal = if aborted.as_mut().poll(&mut signals).is_ready() {
                        Some(Woke::Aborted)
                    } else if !source_done && gone.as_mut().poll(&mut signals).is_ready() {
                        Some(Woke::SourceGone)
                    } else if toxics_open {
                        match change.as_mut().poll(&mut signals) {
                            Poll::Ready((rx, changed)) => Some(Woke::Toxics(rx, changed)),
                            Poll::Pending => None,
                        }
                    } else {
                        None
                    };
                    if let Some(signal) = signal {
                        // The signals after this one went unpolled (and a
                        // new wait for a change needs its first poll): look
                        // at them again on the next wait.
                        control.fired.store(true, Ordering::Release);
                        return Poll::Ready(signal);
                    }
                }
                // `poll_*_ready` keep one waker per direction in the socket,
                // where `readable()` would join (and leave) a waiter list on
                // every wait; each half is waited on by one pump only.
                if want_read {
                    if let Poll::Ready(ready) = self.src.as_ref().poll_read_ready(cx) {
                        return Poll::Ready(Woke::Readable(ready));
                    }
                }
                if want_write {
                    if let Poll::Ready(ready) = self.dst.as_ref().poll_write_ready(cx) {
                        return Poll::Ready(Woke::Writable(ready));
                    }
                }
                if timer_at.is_some() && timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Timer);
                }
                Poll::Pending
            })
            .await;
            match woke {
                Woke::Aborted => return None,
                Woke::SourceGone => {
                    source_done = true;
                    self.chain.push(Item::End(End::Close));
                }
                Woke::Toxics(rx, Ok(())) => {
                    toxics_changed = true;
                    change.set(next_change(rx));
                }
                Woke::Toxics(_, Err(_)) => toxics_open = false,
                Woke::Readable(ready) => {
                    if ready.is_err() {
                        source_done = true;
                        self.chain.push(Item::End(End::Close));
                    }
                }
                Woke::Writable(ready) => {
                    if ready.is_err() {
                        return None;
                    }
                }
                Woke::Timer => timer_at = None,
            }
        }
    }

    /// The pass-through loop, for a direction with no toxic and nothing
    /// queued: each wake-up is one read and one write straight through
    /// `buf`, and the wait after it is the source's readiness alone (a
    /// short read leaves the socket marked drained, so the next `poll_read`
    /// registers this task and returns `Pending` without a system call), as
    /// tokio's copy does; the runtime's budget for I/O bounds a busy source's
    /// turn. Hands back to the pump's loop once a signal has fired (abort,
    /// source gone, toxics changed: they wake this task through `fired`),
    /// the destination falls behind (the rest goes to the outbox) or the
    /// source ends, or if the task's waker is not the one the signals wake;
    /// `None` if the destination failed.
    fn pass_through(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        source_done: &mut bool,
        fired: &AtomicBool,
        registered: Option<&Waker>,
    ) -> Poll<Option<Handback>> {
        if !registered.is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Ready(Some(Handback::NewWaker));
        }
        loop {
            if fired.load(Ordering::Acquire) {
                return Poll::Ready(Some(Handback::Changed));
            }
            match self.step_plain(cx, buf, source_done) {
                None => return Poll::Ready(None),
                Some(Step::Pending) => return Poll::Pending,
                Some(Step::Ended | Step::Backlog) => return Poll::Ready(Some(Handback::Changed)),
                Some(Step::Moved { .. }) => {}
            }
        }
    }

    /// The pass-through: reads and writes straight through `buf` while the
    /// destination takes everything, for up to `READS_PER_TURN` reads.
    /// Returns whether anything moved and whether the source was left
    /// drained (it would block, or a read came back short of the buffer),
    /// or `None` if the destination failed.
    fn copy_plain(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        source_done: &mut bool,
    ) -> Option<(bool, bool)> {
        let mut moved = false;
        for _ in 0..READS_PER_TURN {
            if *source_done {
                break;
            }
            match self.step_plain(cx, buf, source_done)? {
                Step::Pending => return Some((moved, true)),
                Step::Ended | Step::Backlog => return Some((true, false)),
                // Short: the socket is drained (and `poll_read` has said
                // so to the runtime); the next byte brings a wake-up.
                Step::Moved { short: true } => return Some((true, true)),
                Step::Moved { short: false } => moved = true,
            }
        }
        Some((moved, false))
    }

    /// One read from the source, written straight to the destination
    /// through `buf`. A write that falls short leaves the rest in the outbox
    /// (the chain's path writes it, in order); an end of stream goes there
    /// too. `None` if the destination failed.
    ///
    /// Reads go through `poll_read`, which on Linux takes a short read as
    /// the socket drained and clears its readiness, so a request that fits
    /// the buffer costs one read call, not a read and a second that would
    /// block (the same as tokio's own copy).
    // Inlined into both callers: in the pass-through loop it is most of
    // what a wake-up runs, and a call per step measurably costs.
    #[inline(always)]
    fn step_plain(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        source_done: &mut bool,
    ) -> Option<Step> {
        let mut read = ReadBuf::new(buf);
        let n = match Pin::new(&mut self.src).poll_read(cx, &mut read) {
            Poll::Pending => return Some(Step::Pending),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                *source_done = true;
                self.chain.push(Item::End(End::Eof));
                return Some(Step::Ended);
            }
            Poll::Ready(Ok(())) => read.filled().len(),
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "source failed; closing the link");
                *source_done = true;
                self.chain.push(Item::End(End::Close));
                return Some(Step::Ended);
            }
        };
        self.counters.received(n);
        let mut written = 0;
        while written < n {
            // `poll_write` rather than `try_write`: the same readiness check
            // and send, inlined here instead of a call per chunk. A
            // `Pending` leaves this task registered for writability, which
            // the pump's wait for the backlog asks for anyway.
            match Pin::new(&mut self.dst).poll_write(cx, &buf[written..n]) {
                Poll::Ready(Ok(0)) | Poll::Pending => break,
                Poll::Ready(Ok(w)) => written += w,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "destination failed; closing the connection");
                    return None;
                }
            }
        }
        self.counters.sent(written);
        if written < n {
            self.chain.push(Item::Data(Chunk {
                data: bytes::Bytes::copy_from_slice(&buf[written..n]),
                at: Instant::now(),
            }));
            return Some(Step::Backlog);
        }
        Some(Step::Moved {
            short: n < buf.len(),
        })
    }

    /// Acts on how the stream ended, once everything before the end has been
    /// written.
    async fn finish(mut self, end: Option<End>) {
        match end {
            Some(End::Eof) => {
                let _ = self.dst.shutdown().await;
            }
            Some(End::Close) => {
                let _ = self.dst.shutdown().await;
                self.closed.cancel();
            }
            Some(End::Reset) => {
                // Linger 0 makes the close send RST instead of FIN; the other
                // pump is aborted so both sockets are closed right away.
                let _ = self.dst.as_ref().set_zero_linger();
                let _ = self.src.as_ref().set_zero_linger();
                self.abort.cancel();
                // No shutdown first: a FIN before the RST would read as a
                // clean end of stream.
                self.dst.forget();
            }
            None => {
                // Aborted (proxy stopped, reset, a write failed): close
                // without a shutdown, and stop the other direction too.
                self.abort.cancel();
                self.dst.forget();
            }
        }
    }
}
