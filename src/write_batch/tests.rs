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

/// A stream and a blocking std peer on loopback.
async fn pair() -> (DirectTcpStream, std::net::TcpStream) {
    loopback_pair(Duration::from_secs(10)).await
}

/// Starts writing `bytes` on `stream` and checks the write was taken into the batch (Pending).
async fn hand_to_batch(stream: &mut DirectTcpStream, bytes: &[u8]) {
    let taken =
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *stream).poll_write(cx, bytes))).await;
    assert!(taken.is_pending(), "a small write should wait in the batch");
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
/// makes find no room, answer "would block", and the write waits for room as a direct one does.
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

/// A write that answered Pending has been taken; a writer that then shuts down (or flushes)
/// first waits for it to be sent, so the peer gets those bytes, then the end.
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

/// The contract a batched write keeps with its writer: the call after Pending must present the
/// bytes already sent first. One that does not is refused, never miscounted.
#[test]
fn a_write_continued_with_other_bytes_is_refused() {
    in_worker(|| async {
        let (mut ours, _peer) = pair().await;
        hand_to_batch(&mut ours, b"first bytes").await;
        let error = ours.write(b"other bytes").await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Other, "{error}");
    });
}

/// The worker stops while a write waits in the batch: the write is made directly instead.
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
        let sent = ours.write(b"written anyway").await.unwrap();
        assert_eq!(sent, 14);
        ours.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"written anyway");
    });
}

/// A stream that leaves the batch (an HTTP/2 connection) with a write still in it: that write
/// answers the next call as before, and every write after it is made at once.
#[test]
fn a_stream_that_leaves_the_batch_finishes_its_queued_write_then_writes_directly() {
    in_worker(|| async {
        let (mut ours, peer) = pair().await;
        hand_to_batch(&mut ours, b"queued ").await;
        ours.leave_write_batch();
        ours.write_all(b"queued ").await.unwrap();
        let direct =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut ours).poll_write(cx, b"direct")))
                .await;
        assert!(
            matches!(direct, Poll::Ready(Ok(6))),
            "after leaving the batch a write is made at once: {direct:?}"
        );
        ours.shutdown().await.unwrap();
        let got = read_to_end(peer).await;
        assert_eq!(got, b"queued direct");
    });
}

/// Outside a worker (no batch installed), a stream writes directly.
#[tokio::test]
async fn without_a_batch_a_batched_stream_writes_directly() {
    let (mut ours, mut peer) = pair().await;
    let taken =
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut ours).poll_write(cx, b"direct"))).await;
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
