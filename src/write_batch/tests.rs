//! The batch with real sockets on loopback, in a worker-like runtime (one thread, the batch
//! installed in it): what is written arrives whole, in order and on its own connection, whether
//! the sockets have room or not, whatever the writing task does meanwhile.

use std::io::{IoSlice, Read};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::*;
use crate::direct_tcp::{DirectTcpStream, LeaveWriteBatch, loopback_pair};

/// Runs `test` on a one-thread runtime with this thread's batch installed, as a worker does.
/// Fails, saying why, where io_uring cannot be used: these tests are about the batched path.
fn in_worker<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let installed = install().expect(
            "io_uring is needed for this test (Linux 5.6 or later, kernel.io_uring_disabled = 0, \
             no seccomp filter refusing io_uring_setup)",
        );
        tokio::time::timeout(Duration::from_secs(30), test())
            .await
            .expect("the test did not finish in 30 s");
        drop(installed);
    });
}

#[test]
fn the_ring_is_single_issuer_unless_the_kernel_refuses_it() {
    let ring = new_ring().expect("io_uring is needed for this test");
    if !ring.params().is_setup_single_issuer() {
        let Err(refused) = single_issuer_ring().build(RING_ENTRIES) else {
            panic!("a plain ring although the kernel takes the flags");
        };
        assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "{refused}");
    }
}

/// A stream and a blocking std peer on loopback.
async fn pair() -> (DirectTcpStream, std::net::TcpStream) {
    loopback_pair(Duration::from_secs(10)).await
}

/// What one poll of a write of `bytes` on `stream` answers.
async fn poll_write_once(
    stream: &mut DirectTcpStream,
    bytes: &[u8],
) -> Poll<std::io::Result<usize>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *stream).poll_write(cx, bytes))).await
}

/// Writes `bytes` on `stream` and checks the write was taken into the batch: answered at once,
/// whole, before the flusher has run.
async fn hand_to_batch(stream: &mut DirectTcpStream, bytes: &[u8]) {
    let taken = poll_write_once(stream, bytes).await;
    assert!(
        matches!(taken, Poll::Ready(Ok(n)) if n == bytes.len()),
        "a small write should be taken whole at once: {taken:?}"
    );
}

/// Everything the blocking peer reads until the end, read off the runtime's thread.
async fn read_to_end(mut peer: std::net::TcpStream) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    })
    .await
    .unwrap()
}

/// The bytes connection `connection` writes in its write number `index`: distinct per
/// connection and per write, and of sizes on both sides of MAX_BATCHED.
fn message(connection: usize, index: usize) -> Vec<u8> {
    let size = match index % 5 {
        0 => 1,
        1 => 700,
        2 => 1_300,
        3 => MAX_BATCHED,
        _ => MAX_BATCHED + 3_000,
    };
    (0..size)
        .map(|i| (connection * 31 + index * 7 + i) as u8)
        .collect()
}

#[test]
fn many_connections_writing_at_once_each_receive_their_own_bytes_in_order() {
    in_worker(|| async {
        const CONNECTIONS: usize = 40;
        const WRITES: usize = 60;
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for connection in 0..CONNECTIONS {
            let (mut ours, mut peer) = pair().await;
            writers.push(tokio::spawn(async move {
                for index in 0..WRITES {
                    let bytes = message(connection, index);
                    let (front, back) = bytes.split_at(bytes.len() / 2);
                    let mut owned = [IoSlice::new(front), IoSlice::new(back)];
                    let mut slices = &mut owned[..];
                    while !slices.is_empty() {
                        let sent = ours.write_vectored(slices).await.unwrap();
                        assert!(sent > 0, "a write took nothing");
                        IoSlice::advance_slices(&mut slices, sent);
                    }
                }
                ours.shutdown().await.unwrap();
            }));
            readers.push(std::thread::spawn(move || {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        for (connection, reader) in readers.into_iter().enumerate() {
            let got = reader.join().unwrap();
            let expected: Vec<u8> = (0..WRITES)
                .flat_map(|index| message(connection, index))
                .collect();
            assert!(
                got == expected,
                "connection {connection} received other bytes than it wrote ({} of {})",
                got.len(),
                expected.len()
            );
        }
    });
}

/// Megabytes in small writes through a small socket buffer and a slow reader: sends the batch
/// makes find no room or some, the flusher writes the rest as room comes, and each next write
/// waits until the one before is wholly out.
#[test]
fn a_full_socket_makes_the_write_wait_for_room_and_nothing_is_lost() {
    in_worker(|| async {
        let (mut ours, mut peer) = pair().await;
        rustix::net::sockopt::set_socket_send_buffer_size(ours.get_ref(), 4096).unwrap();
        let payload: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        let expected = payload.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut chunk = [0u8; 5000];
            while got.len() < expected.len() {
                std::thread::sleep(Duration::from_micros(50));
                let read = peer.read(&mut chunk).unwrap();
                assert!(read > 0, "the stream ended early");
                got.extend_from_slice(&chunk[..read]);
            }
            assert!(got == expected, "the bytes written arrived changed");
        });
        for piece in payload.chunks(3_000) {
            ours.write_all(piece).await.unwrap();
        }
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
    });
}

/// A write taken into the batch: a writer that then shuts down first waits for it to be sent, so
/// the peer gets those bytes, then the end.
#[test]
fn shutdown_after_a_write_taken_into_the_batch_sends_it_first() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        hand_to_batch(&mut ours, b"sent before the end").await;
        ours.shutdown().await.unwrap();
        let got = read_to_end(peer).await;
        assert_eq!(got, b"sent before the end");
    });
}

/// A flush does not wait for the batch (it sends within the worker's turn), and the bytes still
/// arrive while the writer only waits to read, as a keep-alive connection does after an answer.
#[test]
fn a_flush_does_not_wait_for_the_batch_and_the_bytes_arrive_while_the_writer_reads() {
    in_worker(|| async {
        let (mut ours, mut peer) = pair().await;
        hand_to_batch(&mut ours, b"answer").await;
        let flushed =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut ours).poll_flush(cx))).await;
        assert!(
            matches!(flushed, Poll::Ready(Ok(()))),
            "a flush should not wait for the batch: {flushed:?}"
        );
        let echo = tokio::task::spawn_blocking(move || {
            let mut got = [0u8; 6];
            peer.read_exact(&mut got).unwrap();
            std::io::Write::write_all(&mut peer, b"next request").unwrap();
            got
        });
        let mut request = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut ours, &mut request)
            .await
            .unwrap();
        assert_eq!(&request, b"next request");
        assert_eq!(&echo.await.unwrap(), b"answer");
    });
}

/// Fills the socket under `stream` until it takes no more (written around the batch); the bytes
/// written, all `FILLER`.
fn fill(stream: &DirectTcpStream) -> usize {
    let chunk = [FILLER; 4096];
    let mut written = 0;
    loop {
        match rustix::net::send(stream.get_ref(), &chunk, rustix::net::SendFlags::DONTWAIT) {
            Ok(sent) => written += sent,
            Err(rustix::io::Errno::WOULDBLOCK) => return written,
            Err(error) => panic!("filling the socket: {error}"),
        }
    }
}

const FILLER: u8 = 0xee;

/// A write to a full socket, after which the writer only reads (a keep-alive connection waiting
/// for the next request): the flusher writes it as the peer makes room, and the peer gets every
/// byte, in order, before it answers.
#[test]
fn a_write_to_a_full_socket_goes_out_while_the_writer_reads() {
    in_worker(|| async {
        let (mut ours, mut peer) = pair().await;
        let filled = fill(&ours);
        let answer: Vec<u8> = (0..MAX_BATCHED).map(|i| (i % 241) as u8).collect();
        hand_to_batch(&mut ours, &answer).await;
        ours.flush().await.unwrap();
        let expected = answer.clone();
        let client = tokio::task::spawn_blocking(move || {
            let mut before = vec![0u8; filled];
            peer.read_exact(&mut before).unwrap();
            assert!(before.iter().all(|&byte| byte == FILLER));
            let mut got = vec![0u8; expected.len()];
            peer.read_exact(&mut got).unwrap();
            assert!(got == expected, "the answer arrived changed");
            std::io::Write::write_all(&mut peer, b"next").unwrap();
        });
        let mut request = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut ours, &mut request)
            .await
            .unwrap();
        assert_eq!(&request, b"next");
        client.await.unwrap();
    });
}

/// A stream dropped while its write is stalled on a full socket whose peer does not read: the
/// flusher lets go of the socket at once, so it closes rather than stay open for a peer that may
/// never make room.
#[test]
fn a_stream_dropped_with_a_stalled_write_lets_its_socket_close() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        fill(&ours);
        hand_to_batch(&mut ours, b"no room for this").await;
        // The flusher's turn: the socket takes none of it, and it stalls.
        tokio::task::yield_now().await;
        let socket = ours.socket_handle();
        drop(ours);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            socket.upgrade().is_none(),
            "the socket of a dropped stream is still held by the batch"
        );
        drop(peer);
    });
}

/// A connection dropped while its write waits in the batch: the bytes go to that connection's
/// socket, kept open until they are sent, and to no other; then it closes.
#[test]
fn a_stream_dropped_with_a_write_in_the_batch_still_sends_it_to_its_own_peer() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        hand_to_batch(&mut ours, b"last words").await;
        drop(ours);
        // Another connection opened at once may get the same descriptor number.
        let (mut next, next_peer) = pair().await;
        next.write_all(b"next").await.unwrap();
        next.shutdown().await.unwrap();
        let (got, next_got) = (read_to_end(peer).await, read_to_end(next_peer).await);
        assert_eq!(got, b"last words");
        assert_eq!(next_got, b"next");
    });
}

/// A write the batch took, followed by another: the second waits until the first is out, and
/// the peer reads them in order.
#[test]
fn the_next_write_follows_the_one_in_the_batch() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        hand_to_batch(&mut ours, b"first ").await;
        let second = poll_write_once(&mut ours, b"second").await;
        assert!(
            second.is_pending(),
            "the second write should wait for the first to be sent: {second:?}"
        );
        ours.write_all(b"second").await.unwrap();
        ours.shutdown().await.unwrap();
        assert_eq!(read_to_end(peer).await, b"first second");
    });
}

/// The worker stops while a write waits in the batch: the stream makes it directly instead,
/// before anything after it.
#[test]
fn a_write_waiting_when_the_batch_ends_is_made_directly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let installed = install().expect("io_uring is needed for this test");
        let (mut ours, mut peer) = pair().await;
        hand_to_batch(&mut ours, b"written anyway").await;
        drop(installed);
        ours.write_all(b", then this").await.unwrap();
        ours.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"written anyway, then this");
    });
}

/// A stream that leaves the batch (an HTTP/2 connection) with a write still in it: the next
/// write waits for that one to be sent, and every write after it is made at once.
#[test]
fn a_stream_that_leaves_the_batch_finishes_its_queued_write_then_writes_directly() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        hand_to_batch(&mut ours, b"queued ").await;
        ours.leave_write_batch();
        ours.write_all(b"then ").await.unwrap();
        let direct = poll_write_once(&mut ours, b"direct").await;
        assert!(
            matches!(direct, Poll::Ready(Ok(6))),
            "after leaving the batch a write is made at once: {direct:?}"
        );
        ours.shutdown().await.unwrap();
        let got = read_to_end(peer).await;
        assert_eq!(got, b"queued then direct");
    });
}

/// Outside a worker (no batch installed), a stream writes directly.
#[tokio::test]
async fn without_a_batch_a_batched_stream_writes_directly() {
    let (mut ours, mut peer) = pair().await;
    let taken = poll_write_once(&mut ours, b"direct").await;
    assert!(
        matches!(taken, Poll::Ready(Ok(6))),
        "with no batch the write is made at once"
    );
    drop(ours);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"direct");
}

mod tls;

#[test]
fn every_outcome_reads_back_as_it_was_stored_and_none_reads_as_not_over() {
    let outcomes = [
        Outcome::Done,
        Outcome::Unsent(0),
        Outcome::Unsent(MAX_BATCHED),
        Outcome::Failed(libc::EPIPE),
        Outcome::Failed(i32::MAX),
    ];
    for outcome in outcomes {
        assert_ne!(outcome.encode(), NOT_YET, "{outcome:?}");
        assert_eq!(Outcome::decode(outcome.encode()), Some(outcome));
    }
    assert_eq!(Outcome::decode(NOT_YET), None);
}

#[test]
fn a_slot_keeps_its_first_outcome_and_wakes_the_task_that_waited() {
    let slot = Slot::new(Box::from(&b"bytes"[..]));
    let woken = Arc::new(AtomicU64::new(0));
    let waker = counting_waker(&woken);
    assert_eq!(slot.outcome_or_wait(&waker), None);
    assert_eq!(slot.outcome(), None);
    slot.complete(Outcome::Unsent(3));
    slot.complete(Outcome::Done);
    assert_eq!(slot.outcome(), Some(Outcome::Unsent(3)));
    assert_eq!(slot.outcome_or_wait(&waker), Some(Outcome::Unsent(3)));
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "woken once, by the first end"
    );
}

/// A task that waits while another thread ends the write is never left asleep: the one side's
/// store and load against the other's, many times over.
#[test]
fn a_write_ended_on_another_thread_while_its_task_waits_always_wakes_it() {
    for _ in 0..2000 {
        let slot = Arc::new(Slot::new(Box::from(&b"x"[..])));
        let woken = Arc::new(AtomicU64::new(0));
        let waker = counting_waker(&woken);
        let ender = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || slot.complete(Outcome::Done))
        };
        let seen = slot.outcome_or_wait(&waker);
        ender.join().expect("the ending thread");
        assert!(
            seen == Some(Outcome::Done) || woken.load(Ordering::SeqCst) == 1,
            "neither saw the outcome nor was woken"
        );
    }
}

fn counting_waker(count: &Arc<AtomicU64>) -> Waker {
    struct Counting(Arc<AtomicU64>);
    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    Waker::from(Arc::new(Counting(Arc::clone(count))))
}
