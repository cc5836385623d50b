//! What both servers share: answering a streamed call (read the request within the
//! limit, acknowledge it, do the blocking work off the async threads, stream the answer
//! back), the one log line per request, and the mapping of errors to gRPC statuses.

use crate::grpc::{chunks, read_request, Chunk, ChunkStream};
use protocol::ProtocolError;
use std::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Limits a server applies to what it receives.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest setup, enrolment, shard or update message (bytes).
    pub bulk: u64,
    /// Largest query (bytes).
    pub query: u64,
    /// Longest time a peer may take to send one whole request: a peer that opens a call
    /// and trickles (or stops sending) is cut off instead of holding a task forever.
    pub receive: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Blind-Touch's evaluation keys are tens of MB; a gallery of 1,000,000 users
            // is about 0.6 GB in `columnar` at N = 8192.
            bulk: 2 << 30,
            // A query is 16 ciphertexts (columnar) or one (blindtouch): about 4 MB; in the
            // extended form (columnar), 10.5 MB at N = 8192 and 21 MB at N = 16384.
            query: 64 << 20,
            receive: std::time::Duration::from_secs(600),
        }
    }
}

/// The status a protocol error becomes: the client's fault (bad bytes, bad input) or a
/// state the server is in.
pub fn status(e: &crate::DeployError) -> Status {
    use crate::DeployError as D;
    match e {
        D::Protocol(ProtocolError::Wire { .. } | ProtocolError::Input(_)) | D::Input(_) => {
            Status::invalid_argument(e.to_string())
        }
        D::Protocol(ProtocolError::Layout(_) | ProtocolError::Parameters { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        D::Protocol(_) => Status::failed_precondition(e.to_string()),
        D::Peer { .. } => Status::unavailable(e.to_string()),
        D::Store { .. } | D::Tls { .. } => Status::internal(e.to_string()),
    }
}

/// Refuses an envelope that is not of the kind `method` carries.
pub fn expect_kind(
    bytes: &[u8],
    kind: protocol::wire::Artifact,
    method: &str,
) -> crate::Result<()> {
    let found = protocol::wire::peek(bytes)?;
    // A query travels in either form: ciphertexts, or extended words (the client's choice).
    let extended_query =
        kind == protocol::wire::Artifact::Query && found == protocol::wire::Artifact::QueryExtended;
    if found != kind && !extended_query {
        return Err(crate::DeployError::Input(format!(
            "{method} carries a {} message",
            found.name()
        )));
    }
    Ok(())
}

/// Prints one line per request: who, what, bytes in and out, duration, outcome.
pub fn log_line(
    role: &str,
    method: &str,
    bytes_in: usize,
    bytes_out: usize,
    start: Instant,
    outcome: &str,
) {
    eprintln!(
        "[{role}] {method} in={bytes_in}B out={bytes_out}B {:.1}ms {outcome}",
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// Answers one call: reads the request (at most `limit` bytes), sends the `received`
/// marker, runs `work` on a blocking thread and streams its answer.
pub fn serve<F>(
    role: &'static str,
    method: &'static str,
    request: Request<Streaming<Chunk>>,
    limit: u64,
    receive: std::time::Duration,
    work: F,
) -> Result<Response<ChunkStream>, Status>
where
    F: FnOnce(Vec<u8>) -> crate::Result<Vec<u8>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Chunk, Status>>(4);
    let stream = request.into_inner();
    tokio::spawn(async move {
        let start = Instant::now();
        let read = tokio::time::timeout(receive, read_request(stream, limit, method));
        let read = read.await.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "{method}: the request was not received whole within {} s",
                receive.as_secs()
            )))
        });
        let bytes = match read {
            Ok(b) => b,
            Err(s) => {
                log_line(
                    role,
                    method,
                    0,
                    0,
                    start,
                    &format!("refused: {}", s.message()),
                );
                let _ = tx.send(Err(s)).await;
                return;
            }
        };
        let _ = tx.send(Ok(Chunk::marker(true))).await;
        let bytes_in = bytes.len();
        let outcome = tokio::task::spawn_blocking(move || work(bytes)).await;
        match outcome {
            Ok(Ok(answer)) => {
                log_line(role, method, bytes_in, answer.len(), start, "ok");
                let _ = tx.send(Ok(Chunk::marker(false))).await;
                for chunk in chunks(answer) {
                    if tx.send(Ok(chunk)).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Err(e)) => {
                log_line(role, method, bytes_in, 0, start, &format!("error: {e}"));
                let _ = tx.send(Err(status(&e))).await;
            }
            Err(join) => {
                log_line(role, method, bytes_in, 0, start, "crashed");
                let _ = tx
                    .send(Err(Status::internal(format!("{method} crashed: {join}"))))
                    .await;
            }
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

/// Waits for SIGTERM or Ctrl-C (what `serve` stops on, cleanly).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
