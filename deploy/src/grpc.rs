//! The wire of the services: one prost message, [`Chunk`], streamed both ways by every
//! method, and the code tonic-build generated for the `Main` and `Cluster` services.
//!
//! A request or answer is one sealed protocol envelope cut into chunks of at most
//! [`CHUNK_BYTES`]. The first chunk announces the total, so a receiver refuses an
//! oversized message before allocating anything, and never holds more than it announced.
//! The server first answers with an empty chunk marked `received` as soon as the whole
//! request is in: the client's "upload" stage is then a real transfer time, separate
//! from the server's work and from the "download" of the answer.

use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

/// One piece of a message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// Bytes of the whole message; set on its first chunk only.
    #[prost(uint64, tag = "1")]
    pub total: u64,
    /// This chunk's bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// Server → client: the request was received whole (carries no data).
    #[prost(bool, tag = "3")]
    pub received: bool,
    /// Server → client: the answer follows (carries no data). Sent just before the
    /// answer's first chunk, so "download" starts when the server starts sending, even
    /// for an answer of one chunk.
    #[prost(bool, tag = "4")]
    pub sending: bool,
}

impl Chunk {
    /// A marker chunk (no data): `received`, or `sending` when false.
    pub fn marker(received: bool) -> Self {
        Self {
            total: 0,
            data: Vec::new(),
            received,
            sending: !received,
        }
    }

    /// Whether this is a marker rather than part of a message.
    pub fn is_marker(&self) -> bool {
        self.received || self.sending
    }
}

/// Bytes per chunk: well under gRPC's default 4 MiB message limit.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The generated `Main` service (client → main server).
pub mod main_service {
    include!(concat!(env!("OUT_DIR"), "/touchstone.Main.rs"));
}

/// The generated `Cluster` service (main server → cluster server).
pub mod cluster_service {
    include!(concat!(env!("OUT_DIR"), "/touchstone.Cluster.rs"));
}

/// A boxed stream of chunks, as every method answers.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Status>> + Send + 'static>>;

/// Cuts a message into chunks (an empty message is one empty chunk with total 0).
pub fn chunks(message: Vec<u8>) -> Vec<Chunk> {
    let total = message.len() as u64;
    if message.is_empty() {
        return vec![Chunk {
            total,
            data: Vec::new(),
            received: false,
            sending: false,
        }];
    }
    message
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, data)| Chunk {
            total: if i == 0 { total } else { 0 },
            data: data.to_vec(),
            received: false,
            sending: false,
        })
        .collect()
}

/// The answer stream of a method: `received`, then the answer's chunks (or an error).
pub fn answer(received: bool, result: Result<Vec<u8>, Status>) -> ChunkStream {
    let mut items: Vec<Result<Chunk, Status>> = Vec::new();
    if received {
        items.push(Ok(Chunk::marker(true)));
    }
    match result {
        Ok(message) => items.extend(chunks(message).into_iter().map(Ok)),
        Err(status) => items.push(Err(status)),
    }
    Box::pin(tokio_stream::iter(items))
}

/// Why a stream of chunks is not a message.
#[derive(Debug)]
pub enum Reassembly {
    /// The stream failed (transport or status from the peer).
    Status(Status),
    /// The chunks do not form a message within the limit.
    Refused(String),
}

impl From<Reassembly> for Status {
    fn from(r: Reassembly) -> Self {
        match r {
            Reassembly::Status(s) => s,
            Reassembly::Refused(m) => Status::resource_exhausted(m),
        }
    }
}

/// Reads one message of at most `limit` bytes. `received` markers are skipped (the
/// caller that wants their time uses [`Collector`]).
pub async fn collect<S>(stream: &mut S, limit: u64, what: &str) -> Result<Vec<u8>, Reassembly>
where
    S: Stream<Item = Result<Chunk, Status>> + Unpin,
{
    let mut collector = Collector::new(limit, what);
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(Reassembly::Status)?;
        if chunk.is_marker() {
            continue;
        }
        if collector.push(chunk)? {
            break;
        }
    }
    collector.finish()
}

/// Reassembles chunks into a message, checking the announced total against a limit
/// before reserving memory and every chunk against the total.
pub struct Collector {
    limit: u64,
    what: String,
    total: Option<u64>,
    buf: Vec<u8>,
}

impl Collector {
    /// A collector for one message of at most `limit` bytes, named `what` in errors.
    pub fn new(limit: u64, what: &str) -> Self {
        Self {
            limit,
            what: what.to_string(),
            total: None,
            buf: Vec::new(),
        }
    }

    /// Adds a chunk; true when the message is complete.
    pub fn push(&mut self, chunk: Chunk) -> Result<bool, Reassembly> {
        let total = match self.total {
            Some(t) => {
                if chunk.total != 0 {
                    return Err(Reassembly::Refused(format!(
                        "{}: a later chunk announces a new total",
                        self.what
                    )));
                }
                t
            }
            None => {
                if chunk.total > self.limit {
                    return Err(Reassembly::Refused(format!(
                        "{}: announces {} bytes, above this server's limit of {} bytes",
                        self.what, chunk.total, self.limit
                    )));
                }
                self.total = Some(chunk.total);
                // Reserve at most one chunk ahead: a peer announcing a large total but
                // sending little costs us little.
                self.buf
                    .reserve((chunk.total as usize).min(4 * CHUNK_BYTES));
                chunk.total
            }
        };
        if self.buf.len() as u64 + chunk.data.len() as u64 > total {
            return Err(Reassembly::Refused(format!(
                "{}: more bytes than the {total} announced",
                self.what
            )));
        }
        self.buf.extend_from_slice(&chunk.data);
        Ok(self.buf.len() as u64 == total)
    }

    /// The message, if complete.
    pub fn finish(self) -> Result<Vec<u8>, Reassembly> {
        match self.total {
            Some(t) if t == self.buf.len() as u64 => Ok(self.buf),
            Some(t) => Err(Reassembly::Refused(format!(
                "{}: the stream ended after {} of {t} bytes",
                self.what,
                self.buf.len()
            ))),
            None => Err(Reassembly::Refused(format!(
                "{}: the stream ended before any chunk",
                self.what
            ))),
        }
    }
}

/// Reads a request stream into a message of at most `limit` bytes (servers).
pub async fn read_request(
    mut stream: Streaming<Chunk>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, Status> {
    collect(&mut stream, limit, what)
        .await
        .map_err(Status::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(chunks: Vec<Chunk>, limit: u64) -> Result<Vec<u8>, String> {
        let mut c = Collector::new(limit, "test");
        for chunk in chunks {
            if c.push(chunk)
                .map_err(|e| format!("{:?}", Status::from(e).message()))?
            {
                break;
            }
        }
        c.finish()
            .map_err(|e| Status::from(e).message().to_string())
    }

    #[test]
    fn messages_survive_chunking_at_every_boundary() {
        for len in [
            0,
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            3 * CHUNK_BYTES + 7,
        ] {
            let message: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let parts = chunks(message.clone());
            assert_eq!(parts.len(), len.div_ceil(CHUNK_BYTES).max(1));
            assert_eq!(reassemble(parts, 1 << 30).unwrap(), message, "{len}");
        }
    }

    #[test]
    fn oversized_short_and_padded_streams_are_refused() {
        let e = reassemble(chunks(vec![1; 100]), 99).unwrap_err();
        assert!(
            e.contains("announces 100 bytes, above this server's limit of 99"),
            "{e}"
        );
        let mut parts = chunks(vec![1; 100]);
        parts[0].data.truncate(50);
        assert!(reassemble(parts, 1000)
            .unwrap_err()
            .contains("ended after 50 of 100"));
        let mut parts = chunks(vec![1; 100]);
        parts[0].data.push(2);
        assert!(reassemble(parts, 1000)
            .unwrap_err()
            .contains("more bytes than"));
        // A huge announcement is refused before anything is reserved.
        let huge = Chunk {
            total: u64::MAX,
            data: vec![],
            received: false,
            sending: false,
        };
        assert!(reassemble(vec![huge], 1 << 30)
            .unwrap_err()
            .contains("above"));
        assert!(reassemble(vec![], 10)
            .unwrap_err()
            .contains("before any chunk"));
    }
}
