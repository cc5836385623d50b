//! A client's connection to a main server: blocking calls (the CLI, the harness and the
//! tests are synchronous) on a small runtime of its own. It may be shared by threads:
//! calls from several threads run concurrently over one HTTP/2 connection.

use crate::answers::{Ack, IdentifyAnswer, ServerStatus};
use crate::call::{finish, Timed};
use crate::grpc::chunks;
use crate::grpc::main_service::main_client::MainClient;
use crate::node::Limits;
use crate::tls::{Identity, TlsDir};
use crate::transport::endpoint;
use crate::{DeployError, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Which method of the main server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Setup,
    Enrol,
    Update,
    Identify,
    Status,
}

/// A connection to one main server.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    client: MainClient<Channel>,
    addr: String,
    deadline: Duration,
}

impl Remote {
    /// Connects to `addr` with the client identity of the CA folder `tls`.
    pub fn connect(addr: &str, tls: &Path) -> Result<Self> {
        let tls = TlsDir::open(tls, Identity::Client)?;
        Self::connect_with(addr, &tls)
    }

    /// Connects with an identity already loaded.
    pub fn connect_with(addr: &str, tls: &TlsDir) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| DeployError::Input(format!("cannot start the async runtime: {e}")))?;
        let endpoint = endpoint(addr, tls)?;
        let channel = runtime
            .block_on(endpoint.connect())
            .map_err(|e| peer(addr, format!("cannot connect: {}", source_chain(&e))))?;
        let client =
            MainClient::new(channel).max_decoding_message_size(2 * crate::grpc::CHUNK_BYTES + 1024);
        Ok(Self {
            runtime,
            client,
            addr: addr.to_string(),
            deadline: Duration::from_secs(600),
        })
    }

    /// The main server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets the deadline of every later call.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    fn call(&self, method: Method, message: Vec<u8>) -> Result<Timed> {
        let mut client = self.client.clone();
        let sent = message.len();
        let stream = tokio_stream::iter(chunks(message));
        let limit = Limits::default().bulk;
        let exchange = async move {
            let started = Instant::now();
            let response = match method {
                Method::Setup => client.setup(stream).await,
                Method::Enrol => client.enrol(stream).await,
                Method::Update => client.update(stream).await,
                Method::Identify => client.identify(stream).await,
                Method::Status => client.status(stream).await,
            };
            finish(response, started, sent, limit, "main server answer").await
        };
        let deadline = self.deadline;
        self.runtime
            .block_on(async move { tokio::time::timeout(deadline, exchange).await })
            .map_err(|_| {
                peer(
                    &self.addr,
                    format!("no answer within {:.0} s", deadline.as_secs_f64()),
                )
            })?
            .map_err(|m| peer(&self.addr, m))
    }

    /// Sends the client's setup.
    pub fn setup(&self, message: Vec<u8>) -> Result<(Ack, Timed)> {
        let timed = self.call(Method::Setup, message)?;
        Ok((Ack::decode(&timed.answer)?, timed))
    }

    /// Sends a whole gallery.
    pub fn enrol(&self, message: Vec<u8>) -> Result<(Ack, Timed)> {
        let timed = self.call(Method::Enrol, message)?;
        Ok((Ack::decode(&timed.answer)?, timed))
    }

    /// Sends a gallery update.
    pub fn update(&self, message: Vec<u8>) -> Result<(Ack, Timed)> {
        let timed = self.call(Method::Update, message)?;
        Ok((Ack::decode(&timed.answer)?, timed))
    }

    /// Sends a query; the answer's header, the results envelope and the timings.
    pub fn identify(&self, message: Vec<u8>) -> Result<(IdentifyAnswer, Vec<u8>, Timed)> {
        let timed = self.call(Method::Identify, message)?;
        let (answer, results) = IdentifyAnswer::decode(&timed.answer)?;
        let results = results.to_vec();
        Ok((answer, results, timed))
    }

    /// What the main server holds.
    pub fn status(&self) -> Result<ServerStatus> {
        let timed = self.call(Method::Status, Vec::new())?;
        ServerStatus::decode(&timed.answer)
    }
}

fn peer(addr: &str, message: String) -> DeployError {
    DeployError::Peer {
        peer: format!("main server {addr}"),
        message,
    }
}

/// An error and its sources, one line (a TLS refusal hides in the sources).
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
