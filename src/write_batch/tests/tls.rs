//! TLS over a batched stream, as a worker serves HTTPS: rustls hands its records to the batch,
//! which takes them at once and sends them in order. What the client reads must be
//! exactly what was written, in order, closed with `close_notify`, whether the socket has room or
//! not.

use std::io::Read;
use std::net::TcpStream as StdTcpStream;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::server::tls::acceptor_from_der;

/// A self-signed `localhost` certificate: the acceptor that serves it and a client config that
/// trusts it.
fn tls_pair() -> (TlsAcceptor, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let acceptor = acceptor_from_der(
        vec![der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (acceptor, Arc::new(client))
}

/// Reads, as a blocking TLS client on its own thread, everything until the server's
/// `close_notify`; an end without it is an error (rustls says "unexpected EOF").
fn read_all_over_tls(
    peer: StdTcpStream,
    client: Arc<rustls::ClientConfig>,
    pause_between_reads: Duration,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let name = ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(client, name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, peer);
        let mut got = Vec::new();
        let mut chunk = [0u8; 5000];
        loop {
            std::thread::sleep(pause_between_reads);
            match tls.read(&mut chunk)? {
                0 => return Ok(got),
                read => got.extend_from_slice(&chunk[..read]),
            }
        }
    })
}

async fn joined(reader: std::thread::JoinHandle<std::io::Result<Vec<u8>>>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap()
        .expect("the TLS client read the stream to its close_notify")
}

#[test]
fn tls_records_through_the_batch_reach_each_client_whole_and_in_order() {
    in_worker(|| async {
        const CONNECTIONS: usize = 12;
        const WRITES: usize = 30;
        let (acceptor, client) = tls_pair();
        let mut servers = Vec::new();
        let mut readers = Vec::new();
        for connection in 0..CONNECTIONS {
            let (ours, peer) = pair().await;
            readers.push(read_all_over_tls(peer, Arc::clone(&client), Duration::ZERO));
            let acceptor = acceptor.clone();
            servers.push(tokio::spawn(async move {
                let mut tls = acceptor.accept(ours).await.expect("the TLS handshake");
                for index in 0..WRITES {
                    tls.write_all(&message(connection, index)).await.unwrap();
                    tls.flush().await.unwrap();
                }
                tls.shutdown().await.unwrap();
            }));
        }
        for server in servers {
            server.await.unwrap();
        }
        for (connection, reader) in readers.into_iter().enumerate() {
            let expected: Vec<u8> = (0..WRITES)
                .flat_map(|index| message(connection, index))
                .collect();
            let got = joined(reader).await;
            assert!(
                got == expected,
                "connection {connection} read {} bytes, not its own {} in order",
                got.len(),
                expected.len()
            );
        }
    });
}

/// rustls takes the plaintext at once, and its record is taken into the batch at once (a flush
/// does not wait for it); the next record's flush waits until the first is sent: the records do
/// go through the batch, not around it.
#[test]
fn a_tls_record_goes_through_the_batch() {
    in_worker(|| async {
        let (acceptor, client) = tls_pair();
        let (ours, peer) = pair().await;
        let reader = read_all_over_tls(peer, client, Duration::ZERO);
        let mut tls = acceptor.accept(ours).await.expect("the TLS handshake");
        // The handshake's last flight goes out through the batch too: its turn first.
        tokio::task::yield_now().await;
        let (taken, flushed) = write_and_flush(&mut tls, b"one record").await;
        assert!(
            matches!(taken, Poll::Ready(Ok(10))) && matches!(flushed, Poll::Ready(Ok(()))),
            "the first record should be taken and flushed at once: {taken:?} {flushed:?}"
        );
        let (taken, flushed) = write_and_flush(&mut tls, b", another").await;
        assert!(
            matches!(taken, Poll::Ready(Ok(9))) && flushed.is_pending(),
            "the second record should wait for the first, still in the batch: {taken:?} {flushed:?}"
        );
        tls.flush().await.unwrap();
        tls.shutdown().await.unwrap();
        assert_eq!(joined(reader).await, b"one record, another");
    });
}

/// One poll of a write of `bytes` and one of a flush after it, with what each answered.
async fn write_and_flush<T: AsyncWrite + Unpin>(
    tls: &mut T,
    bytes: &[u8],
) -> (Poll<std::io::Result<usize>>, Poll<std::io::Result<()>>) {
    std::future::poll_fn(|cx| {
        let taken = Pin::new(&mut *tls).poll_write(cx, bytes);
        let flushed = Pin::new(&mut *tls).poll_flush(cx);
        Poll::Ready((taken, flushed))
    })
    .await
}

/// Megabytes of records through a small socket buffer and a slow client: the batch's sends find
/// no room or some, the flusher writes the rest of each record as room comes, and the next
/// record waits until the one before is out.
#[test]
fn a_full_socket_under_tls_loses_nothing() {
    in_worker(|| async {
        let (acceptor, client) = tls_pair();
        let (ours, peer) = pair().await;
        rustix::net::sockopt::set_socket_send_buffer_size(ours.get_ref(), 4096).unwrap();
        let reader = read_all_over_tls(peer, client, Duration::from_micros(50));
        let mut tls = acceptor.accept(ours).await.expect("the TLS handshake");
        let payload: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        // Flushed one by one, so that each record goes to the batch on its own (records
        // gathered past MAX_BATCHED would be written directly).
        for piece in payload.chunks(6_000) {
            tls.write_all(piece).await.unwrap();
            tls.flush().await.unwrap();
        }
        tls.shutdown().await.unwrap();
        let got = joined(reader).await;
        assert!(
            got == payload,
            "read {} bytes, not the {} written",
            got.len(),
            payload.len()
        );
    });
}
