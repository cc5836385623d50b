//! The caller's side of a streamed call: send the message in chunks, then time the
//! answer's three phases — until the server says `received` (upload), until its first
//! answer chunk (the server's work), until the last (download).

use crate::grpc::{Chunk, Collector, Reassembly};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

/// An answer and how long each phase took.
#[derive(Clone, Debug, Default)]
pub struct Timed {
    /// The answer's bytes.
    pub answer: Vec<u8>,
    /// Request sent until the server had all of it (socket transfer, plus one
    /// one-way latency for the marker).
    pub upload: Duration,
    /// The server's work, seen from the caller (`received` until `sending`).
    pub server: Duration,
    /// The server's `sending` marker until the answer's last byte.
    pub download: Duration,
    /// Request bytes.
    pub sent: usize,
}

/// Reads a call's answer (at most `limit` bytes), timing it from `started`.
pub async fn read_answer(
    mut stream: Streaming<Chunk>,
    started: Instant,
    sent: usize,
    limit: u64,
    what: &str,
) -> Result<Timed, Reassembly> {
    let mut collector = Collector::new(limit, what);
    let mut received_at = None;
    let mut first_at = None;
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(Reassembly::Status)?;
        if chunk.received {
            received_at.get_or_insert_with(Instant::now);
            continue;
        }
        if chunk.sending {
            first_at.get_or_insert_with(Instant::now);
            continue;
        }
        let now = Instant::now();
        first_at.get_or_insert(now);
        if collector.push(chunk)? {
            break;
        }
    }
    let answer = collector.finish()?;
    let done = Instant::now();
    let received_at = received_at.unwrap_or(started);
    let first_at = first_at.unwrap_or(done);
    Ok(Timed {
        answer,
        upload: received_at.saturating_duration_since(started),
        server: first_at.saturating_duration_since(received_at),
        download: done.saturating_duration_since(first_at),
        sent,
    })
}

/// The answer of a call whose response (headers) arrived as `response`: read and
/// timed, or the failure as text.
pub async fn finish(
    response: Result<tonic::Response<Streaming<Chunk>>, Status>,
    started: Instant,
    sent: usize,
    limit: u64,
    what: &str,
) -> Result<Timed, String> {
    let response = response.map_err(|s| describe_status(&s))?;
    read_answer(response.into_inner(), started, sent, limit, what)
        .await
        .map_err(|r| describe(&r))
}

/// A failed call as text: the status code and message, or the reassembly error.
pub fn describe(r: &Reassembly) -> String {
    match r {
        Reassembly::Status(s) => describe_status(s),
        Reassembly::Refused(m) => m.clone(),
    }
}

/// A status as text.
pub fn describe_status(s: &Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{:?}: {}", s.code(), s.message())
    }
}
