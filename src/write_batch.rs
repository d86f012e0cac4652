//! A worker's small socket writes, gathered and sent with one system call (io_uring).
//!
//! Why: under load, each answer casegate writes wakes the client thread waiting for it, and each
//! request it writes upstream wakes an upstream worker; the kernel switches to the woken thread
//! as the write returns, so casegate was switched away and back once per write (76% of its
//! preemptions followed the `writev` of an answer, 21% the `send` of a request; README,
//! Performance). Sent together in one `io_uring_enter`, a batch of writes wakes each peer once and
//! is switched away from once, and makes one system call instead of one per write.
//!
//! How: a write of at most [`MAX_BATCHED`] bytes to a socket that takes part is copied into the
//! worker's batch with a handle on the socket, which stays open until the write is done, and the
//! write answers at once, as a socket that took the bytes into its buffer would: the writing task
//! goes on (to read the next request, say) without another turn. The first write of a batch wakes
//! the worker's flusher task, which the runtime polls after the tasks that were already ready: by
//! then they have queued their writes too. The flusher sends the whole batch in one call. Each
//! send carries `MSG_DONTWAIT`, so it completes inside that call, with bytes sent (perhaps fewer
//! than asked) or "would block", and never waits in the kernel: the call returns at once. What a
//! full socket did not take, the flusher keeps and writes itself as room comes (the writing task
//! may be waiting to read by then), in order: the stream's next write, its shutdown and a splice
//! to its socket wait until the write is wholly out ([`Slot`]), and learn its error. That sends
//! never wait is checked when a worker starts ([`install`]); a worker where io_uring is missing,
//! refused (`kernel.io_uring_disabled`, a seccomp filter) or waits on such a send writes every
//! socket directly, as before, and says so once in the log.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, opcode, types};
use tokio::net::TcpStream;
use tracing::{info, warn};

/// Larger writes (a big body's chunks) go straight to the socket: copying them would cost more
/// than the switches spared.
pub const MAX_BATCHED: usize = 16 * 1024;
/// Submission entries; a larger batch is sent in rounds of this many, in one flusher run.
const RING_ENTRIES: u32 = 256;

/// What became of a queued write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte went out.
    Done,
    /// The batch stopped (the worker is stopping, or io_uring failed) with the bytes from this
    /// offset not sent: the stream writes them itself.
    Unsent(usize),
    /// The send failed with this OS error.
    Failed(i32),
}

/// One queued write: its bytes, and what became of them, for the stream's next write, shutdown or
/// splice, which wait for it.
///
/// The outcome is an atomic word, read with a plain load: a write is asked about three or four
/// times (the flush, the next read, the next write, the drop) and nearly always already over,
/// and a mutex there was two locked instructions an asking, some 5 ns each on this kind of VM
/// (ten a request; `callgrind.sh --locked`). The waker is kept behind a lock taken only when a
/// task does wait, which is rare: the flusher sends a batch within the worker's turn.
#[derive(Debug)]
pub struct Slot {
    bytes: Box<[u8]>,
    /// [`Outcome::encode`]d; [`NOT_YET`] until the write is over.
    outcome: AtomicU64,
    /// Set (after `waker`) by a task that found the write not over, so that the end wakes it.
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// The encoded outcome of a write not over yet.
const NOT_YET: u64 = 0;

impl Outcome {
    /// A nonzero word: the kind in the low two bits, the offset or error number above them.
    fn encode(self) -> u64 {
        match self {
            Outcome::Done => 1,
            Outcome::Unsent(from) => 2 | ((from as u64) << 2),
            Outcome::Failed(errno) => 3 | (u64::from(errno as u32) << 2),
        }
    }

    fn decode(word: u64) -> Option<Outcome> {
        match word & 3 {
            1 => Some(Outcome::Done),
            2 => Some(Outcome::Unsent(
                usize::try_from(word >> 2).unwrap_or(usize::MAX),
            )),
            3 => Some(Outcome::Failed((word >> 2) as u32 as i32)),
            _ => None,
        }
    }
}

impl Slot {
    fn new(bytes: Box<[u8]>) -> Slot {
        Slot {
            bytes,
            outcome: AtomicU64::new(NOT_YET),
            waiting: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// The bytes queued, in order.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The outcome, if the write is over.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::decode(self.outcome.load(Ordering::Acquire))
    }

    /// The outcome, or `None` after remembering `waker` for when it comes.
    pub fn outcome_or_wait(&self, waker: &Waker) -> Option<Outcome> {
        if let Some(outcome) = self.outcome() {
            return Some(outcome);
        }
        {
            let mut kept = self.lock_waker();
            match &*kept {
                Some(known) if known.will_wake(waker) => {}
                _ => *kept = Some(waker.clone()),
            }
        }
        // Both sides store then load, sequentially consistent: either this load sees the
        // outcome, or `complete`'s load sees `waiting` and wakes the waker stored above.
        self.waiting.store(true, Ordering::SeqCst);
        Outcome::decode(self.outcome.load(Ordering::SeqCst))
    }

    /// Ends the write, once: a slot already ended keeps its first outcome.
    fn complete(&self, outcome: Outcome) {
        let ended = self.outcome.compare_exchange(
            NOT_YET,
            outcome.encode(),
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
        if ended.is_err() || !self.waiting.load(Ordering::SeqCst) {
            return;
        }
        let waker = self.lock_waker().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Never poisoned in practice (nothing panics while holding it); a poisoned lock still
    /// holds a whole value.
    fn lock_waker(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A queued write: the socket is held open by it until the send is done, so its descriptor
/// cannot be closed and handed to another connection in between.
struct Entry {
    socket: Arc<TcpStream>,
    slot: Arc<Slot>,
}

/// A write the socket did not wholly take: the rest goes out as room comes, by the flusher.
struct Stalled {
    socket: Arc<TcpStream>,
    slot: Arc<Slot>,
    sent: usize,
}

impl Stalled {
    /// Writes what it can of the rest; `Ready` once the write is over (its slot answered).
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // The stream is gone (only this handle is left): nobody waits for these bytes, and the
        // connection is over; as a write still queued when its stream is dropped, the rest is
        // not written.
        if Arc::strong_count(&self.slot) == 1 {
            return Poll::Ready(());
        }
        while self.sent < self.slot.bytes.len() {
            // Through tokio's readiness, as a direct write: the writing task no longer waits on
            // this socket (it waits on the slot), so the flusher's waker is the one kept.
            match crate::direct_tcp::poll_send(&self.socket, cx, &self.slot.bytes[self.sent..]) {
                Poll::Ready(Ok(0)) => {
                    self.slot.complete(Outcome::Failed(libc::EIO));
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(sent)) => self.sent += sent,
                Poll::Ready(Err(error)) => {
                    let errno = error.raw_os_error().unwrap_or(libc::EIO);
                    self.slot.complete(Outcome::Failed(errno));
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.slot.complete(Outcome::Done);
        Poll::Ready(())
    }
}

struct Batch {
    ring: IoUring,
    entries: Vec<Entry>,
    /// The last batch's vector, emptied, for the next one: a batch allocates nothing of its own.
    spare: Vec<Entry>,
    /// Writes whose sockets were full, finished by the flusher as room comes.
    stalled: Vec<Stalled>,
    /// The flusher, waiting for the next batch's first write.
    flusher: Option<Waker>,
}

impl Batch {
    /// Every write not yet over is handed back to its stream, from where it stopped.
    fn end(self) {
        for entry in self.entries {
            entry.slot.complete(Outcome::Unsent(0));
        }
        for stalled in self.stalled {
            stalled.slot.complete(Outcome::Unsent(stalled.sent));
        }
        if let Some(flusher) = self.flusher {
            flusher.wake();
        }
    }
}

thread_local! {
    /// This worker's batch; `None` on threads that are not workers, or where io_uring is not
    /// used.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Ends the worker's batching when dropped: writes still queued or stalled are handed back to
/// their streams ([`Outcome::Unsent`]), which write the rest directly.
#[must_use = "batching ends when the guard is dropped"]
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        let batch = BATCH.with(|batch| batch.try_borrow_mut().ok().and_then(|mut b| b.take()));
        if let Some(batch) = batch {
            batch.end();
        }
    }
}

/// Starts batching this thread's writes: called by a worker inside its runtime, which runs the
/// flusher. `None` when io_uring cannot be used here (logged once per process).
pub fn install() -> Option<Installed> {
    // Each outcome is logged once, so that one worker's refusal is not hidden by another's
    // success, nor repeated by every worker.
    static SAID_BATCHED: AtomicBool = AtomicBool::new(false);
    static SAID_DIRECT: AtomicBool = AtomicBool::new(false);
    let ring = new_ring().map_err(|error| error.to_string());
    let ring = ring.and_then(|mut ring| probe_sends_never_wait(&mut ring).map(|()| ring));
    let ring = match ring {
        Ok(ring) => ring,
        Err(reason) => {
            if !SAID_DIRECT.swap(true, Ordering::Relaxed) {
                warn!(%reason, "io_uring cannot batch socket writes here; each write is its own system call");
            }
            return None;
        }
    };
    if !SAID_BATCHED.swap(true, Ordering::Relaxed) {
        info!("socket writes are batched with io_uring");
    }
    BATCH.with(|batch| {
        *batch.borrow_mut() = Some(Batch {
            ring,
            entries: Vec::new(),
            spare: Vec::new(),
            stalled: Vec::new(),
            flusher: None,
        })
    });
    tokio::spawn(Flusher);
    Some(Installed(()))
}

/// Queues `slices` for `socket` in this thread's batch, to be sent by the flusher; the returned
/// slot tells what became of them. `None` when this thread does not batch or the write is empty
/// or large: the caller writes directly.
pub fn queue(socket: &Arc<TcpStream>, slices: &[IoSlice<'_>]) -> Option<Arc<Slot>> {
    let total: usize = slices.iter().map(|slice| slice.len()).sum();
    if total == 0 || total > MAX_BATCHED {
        return None;
    }
    BATCH.with(|batch| {
        let mut batch = batch.try_borrow_mut().ok()?;
        let batch = batch.as_mut()?;
        let mut bytes = Vec::with_capacity(total);
        for slice in slices {
            bytes.extend_from_slice(slice);
        }
        let slot = Arc::new(Slot::new(bytes.into_boxed_slice()));
        batch.entries.push(Entry {
            socket: Arc::clone(socket),
            slot: Arc::clone(&slot),
        });
        if let Some(flusher) = batch.flusher.take() {
            flusher.wake();
        }
        Some(slot)
    })
}

/// Wakes the flusher, for a stream dropped while its write was stalled: the flusher lets go of
/// the socket, which closes, rather than keep it until the peer makes room.
pub fn nudge() {
    BATCH.with(|batch| {
        if let Ok(mut batch) = batch.try_borrow_mut()
            && let Some(flusher) = batch.as_mut().and_then(|batch| batch.flusher.take())
        {
            flusher.wake();
        }
    });
}

/// The worker's task that sends each batch.
struct Flusher;

impl Future for Flusher {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        BATCH.with(|batch| {
            let Ok(mut batch) = batch.try_borrow_mut() else {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            let Some(current) = batch.as_mut() else {
                return Poll::Ready(()); // batching ended
            };
            // The batch is taken whole (its vector swapped with the spare one), so the sends are
            // made from a vector nothing pushes to meanwhile.
            let mut sending = std::mem::take(&mut current.spare);
            std::mem::swap(&mut sending, &mut current.entries);
            let mut failed = None;
            for round in sending.chunks(RING_ENTRIES as usize) {
                if let Err(error) = send_round(&mut current.ring, round, &mut current.stalled) {
                    failed = Some(error);
                    break;
                }
            }
            let Some(error) = failed else {
                sending.clear();
                current.spare = sending;
                current
                    .stalled
                    .retain_mut(|stalled| stalled.poll_finish(cx).is_pending());
                match &current.flusher {
                    Some(known) if known.will_wake(cx.waker()) => {}
                    _ => current.flusher = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            };
            // The ring cannot be trusted any more: this worker stops batching, and what is
            // still queued or stalled goes back to its stream, to be written directly. Stalled
            // writes (this batch's partial sends among them) go back from where they stopped,
            // first: a write is answered once, so the answers below cannot reach them.
            warn!(%error, "io_uring failed; this worker now writes each socket directly");
            if let Some(ended) = batch.take() {
                ended.end();
            }
            // The failed round's writes are answered (send_round), and keep that answer; the
            // rounds after it were never entered, and their streams write them themselves. The
            // kernel may still read the failed round's bytes and sockets, so none of them is
            // freed.
            for entry in &sending {
                entry.slot.complete(Outcome::Unsent(0));
            }
            std::mem::forget(sending);
            Poll::Ready(())
        })
    }
}

/// The worker's ring. Only the worker's thread ever enters it (the batch is the thread's own), so
/// the kernel is told so and runs the ring's completion work only when the flusher asks for
/// completions, without interrupting the worker for it (SINGLE_ISSUER, DEFER_TASKRUN,
/// COOP_TASKRUN): `ab.sh`, three runs of 8-10 pairs, -0.22 to -0.26 us a plain request, cheaper
/// in 19 of 26 pairs (SINGLE_ISSUER alone, COOP_TASKRUN alone, or the first two without
/// COOP_TASKRUN were not cheaper). A kernel older than 6.1 refuses the flags (EINVAL), and gets a
/// plain ring.
fn new_ring() -> io::Result<IoUring> {
    single_issuer_ring()
        .build(RING_ENTRIES)
        .or_else(|_| IoUring::new(RING_ENTRIES))
}

/// A builder of the ring [`new_ring`] asks for first.
fn single_issuer_ring() -> io_uring::Builder {
    let mut builder = IoUring::builder();
    builder
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun();
    builder
}

/// Sends one round (at most the ring's size) and answers each slot, or puts its write in `stalled`
/// when the socket took only part of it, or none. Every send completes inside the one call
/// (`MSG_DONTWAIT`), so when it returns, the kernel is done with every buffer and socket in
/// `round`.
fn send_round(ring: &mut IoUring, round: &[Entry], stalled: &mut Vec<Stalled>) -> io::Result<()> {
    {
        let mut submission = ring.submission();
        for (index, entry) in round.iter().enumerate() {
            let send = opcode::Send::new(
                types::Fd(entry.socket.as_raw_fd()),
                entry.slot.bytes.as_ptr(),
                entry.slot.bytes.len() as u32,
            )
            .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
            .build()
            .user_data(index as u64);
            // SAFETY: the bytes and the socket are held by `round` until every send in it has
            // completed (below, or forever if the ring fails).
            if unsafe { submission.push(&send) }.is_err() {
                // Cannot happen (the queue was empty and holds RING_ENTRIES). Nothing of this
                // round has been submitted, and the worker stops batching and drops the ring
                // without entering it again: none of it is sent.
                drop(submission);
                for entry in round {
                    entry.slot.complete(Outcome::Unsent(0));
                }
                return Err(io::Error::other("the submission queue was full"));
            }
        }
    }
    let mut answered = [false; RING_ENTRIES as usize];
    let mut left = round.len();
    while left > 0 {
        let waited = ring.submit_and_wait(left);
        for completion in ring.completion() {
            let index = completion.user_data() as usize;
            let (Some(entry), Some(false)) = (round.get(index), answered.get(index).copied())
            else {
                continue;
            };
            let result = completion.result();
            match result {
                sent if sent as usize == entry.slot.bytes.len() => {
                    entry.slot.complete(Outcome::Done)
                }
                sent if sent >= 0 || -result == libc::EAGAIN => stalled.push(Stalled {
                    socket: Arc::clone(&entry.socket),
                    slot: Arc::clone(&entry.slot),
                    sent: usize::try_from(sent).unwrap_or(0),
                }),
                _ => entry.slot.complete(Outcome::Failed(-result)),
            }
            answered[index] = true;
            left -= 1;
        }
        match waited {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                // Sends not answered may have gone out, or may yet: their tasks fail (their
                // connections close) rather than write those bytes again, and their bytes and
                // sockets are kept for good, since the kernel may still read them.
                for (entry, done) in round.iter().zip(&answered) {
                    if !done {
                        entry.slot.complete(Outcome::Failed(libc::EIO));
                    }
                }
                return Err(error);
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Checks that a `MSG_DONTWAIT` send to a full socket completes at once with "would block"
/// rather than waiting in the kernel for room, which a worker's batch relies on: a send that
/// waited would hold up every task of the worker.
fn probe_sends_never_wait(ring: &mut IoUring) -> Result<(), String> {
    let (ours, _peer) =
        std::os::unix::net::UnixStream::pair().map_err(|error| format!("socketpair: {error}"))?;
    ours.set_nonblocking(true)
        .map_err(|error| format!("socketpair: {error}"))?;
    let chunk = [0u8; 4096];
    loop {
        match rustix::net::send(&ours, &chunk, rustix::net::SendFlags::DONTWAIT) {
            Ok(_) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) => break,
            Err(error) => return Err(format!("filling the probe socket: {error}")),
        }
    }
    // Leaked: if the kernel did keep the send waiting, it may read these bytes later.
    let probe: &'static [u8] = Box::leak(Box::new([0u8; 1]));
    let send = opcode::Send::new(types::Fd(ours.as_raw_fd()), probe.as_ptr(), 1)
        .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        .build()
        .user_data(0);
    // SAFETY: the byte is leaked (never freed) and the socket outlives the check or is closed
    // with the send cancelled by the ring's teardown.
    unsafe { ring.submission().push(&send) }
        .map_err(|_| "the probe's submission queue was full".to_string())?;
    ring.submit()
        .map_err(|error| format!("io_uring_enter: {error}"))?;
    let completion = ring.completion().next();
    match completion.map(|completion| completion.result()) {
        Some(result) if -result == libc::EAGAIN => Ok(()),
        Some(result) => Err(format!(
            "a send to a full socket answered {result}, not EAGAIN"
        )),
        None => Err("a MSG_DONTWAIT send to a full socket waited in the kernel".to_string()),
    }
}

#[cfg(test)]
mod tests;
