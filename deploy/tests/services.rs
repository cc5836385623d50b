//! The services on a loopback port, in process, against hostile callers: a request
//! announcing more than the limit, one that stops sending, one of the wrong kind, one
//! that is not an envelope — each an error status, never a panic or a hang; and a caller
//! without a certificate of the deployment's CA refused at the handshake.
//!
//! Every step runs on a fresh connection under [`step`]: bounded in time, so a step that
//! never ends is a failure naming the step, not a test run that hangs until CI gives up.

use deploy::cluster_node::ClusterNode;
use deploy::grpc::cluster_service::cluster_client::ClusterClient;
use deploy::grpc::{chunks, Chunk};
use deploy::node::Limits;
use deploy::tls::{make_ca, Identity, TlsDir};
use deploy::transport::endpoint;
use protocol::{ColumnarEngine, ParamSpec};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::transport::Server;

/// The longest one attempt at a step may take (each takes milliseconds on loopback).
const STEP: Duration = Duration::from_secs(30);

/// Runs one step — `attempt` opens its own connection each time — bounded by [`STEP`].
/// An attempt that stalls is tried once more on a new connection, as a real caller would
/// after its deadline: CI once saw one of these loopback calls never finish, and this
/// machine once in about 1,000 runs (the old test had no deadline at all). A second stall
/// fails the test naming the step, so a server that stops answering still fails it.
async fn step<T, F, Fut>(name: &str, attempt: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    for n in 1..=2 {
        match tokio::time::timeout(STEP, attempt()).await {
            Ok(out) => return out,
            Err(_) => eprintln!(
                "{name}: attempt {n} of 2 had no outcome within {} s",
                STEP.as_secs()
            ),
        }
    }
    panic!("{name}: no outcome within {} s, twice", STEP.as_secs())
}

struct Fixture {
    dir: tempfile::TempDir,
    addr: String,
    tls: TlsDir,
    other: TlsDir,
}

async fn start(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    make_ca(&dir.path().join("ca"), &[]).unwrap();
    make_ca(&dir.path().join("other"), &[]).unwrap();
    let tls = TlsDir::open(&dir.path().join("ca"), Identity::Server).unwrap();
    let other = TlsDir::open(&dir.path().join("other"), Identity::Client).unwrap();
    let params = ParamSpec::preset("col-8192").unwrap().build().unwrap();
    let node = Arc::new(
        ClusterNode::open(
            params,
            ColumnarEngine::Cpu.resolve(),
            &dir.path().join("store"),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server_tls = tls.server_config();
    let server_leaf = tls.leaf_der().to_vec();
    tokio::spawn(async move {
        Server::builder()
            .tls_config(server_tls)
            .unwrap()
            .add_service(node.service(limits, Some(server_leaf)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    Fixture {
        dir,
        addr,
        tls,
        other,
    }
}

async fn client(
    f: &Fixture,
    tls: &TlsDir,
) -> Result<ClusterClient<tonic::transport::Channel>, String> {
    let channel = endpoint(&f.addr, tls)
        .unwrap()
        .timeout(STEP)
        .connect()
        .await
        .map_err(|e| deploy::remote::source_chain(&e))?;
    Ok(ClusterClient::new(channel))
}

/// The status a call ends with (the first error).
async fn status_of(
    call: impl Future<Output = Result<tonic::Response<tonic::Streaming<Chunk>>, tonic::Status>>,
) -> tonic::Status {
    let mut stream = match call.await {
        Ok(r) => r.into_inner(),
        Err(s) => return s,
    };
    while let Some(item) = stream.next().await {
        if let Err(s) = item {
            return s;
        }
    }
    panic!("the call succeeded")
}

/// The status `call` ends with on a fresh connection of a deployment caller, as a step.
async fn refused<C, Fut>(name: &str, f: &Fixture, call: C) -> tonic::Status
where
    C: Fn(ClusterClient<tonic::transport::Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<tonic::Streaming<Chunk>>, tonic::Status>>,
{
    step(name, || async {
        let c = client(f, &f.tls).await.unwrap();
        status_of(call(c)).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_error_statuses() {
    let limits = Limits {
        bulk: 1 << 20,
        query: 4 << 20,
        receive: Duration::from_secs(2),
    };
    let f = start(limits).await;

    // Announcing more than the limit: refused before anything is read.
    let huge = Chunk {
        total: 1 << 40,
        data: vec![0; 16],
        received: false,
        sending: false,
    };
    let s = refused("announcing 1 TiB", &f, |mut c| {
        let huge = huge.clone();
        async move { c.shard(tokio_stream::iter(vec![huge])).await }
    })
    .await;
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    assert!(s.message().contains("above this server's limit"), "{s:?}");

    // A query over the query limit.
    let s = refused("a 5 MiB query", &f, |mut c| async move {
        c.query(tokio_stream::iter(chunks(vec![0; 5 << 20]))).await
    })
    .await;
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");

    // A caller that announces 100 bytes, sends 10 and stops: cut off after 2 s.
    let started = std::time::Instant::now();
    let s = refused("a stalled upload", &f, |mut c| async move {
        let stalled = tokio_stream::iter(vec![Chunk {
            total: 100,
            data: vec![1; 10],
            received: false,
            sending: false,
        }])
        .chain(tokio_stream::pending());
        c.setup(stalled).await
    })
    .await;
    assert_eq!(s.code(), tonic::Code::DeadlineExceeded, "{s:?}");
    assert!(started.elapsed() < 2 * STEP);

    // Not an envelope; and an envelope of the wrong kind for the method.
    let s = refused("garbage", &f, |mut c| async move {
        c.query(tokio_stream::iter(chunks(b"garbage".to_vec())))
            .await
    })
    .await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("not a touchstone message"), "{s:?}");
    let params = ParamSpec::preset("col-8192").unwrap().build().unwrap();
    let reset = protocol::messages::Reset::encode(&params, 1);
    let s = refused("a reset sent as a query", &f, |mut c| {
        let reset = reset.clone();
        async move { c.query(tokio_stream::iter(chunks(reset))).await }
    })
    .await;
    assert!(s.message().contains("carries a reset message"), "{s:?}");
    // A query before any setup.
    let client_role = protocol::roles::Client::new(
        params.clone(),
        protocol::messages::Layout::Columnar,
        protocol::Workload::synthetic(&protocol::SyntheticSpec::new(1, 1, 3))
            .unwrap()
            .quantized,
    )
    .unwrap();
    let q = client_role.query_message(&client_role.encrypt_query(&[0.0; 16]).unwrap());
    let s = refused("a query before setup", &f, |mut c| {
        let q = q.clone();
        async move { c.query(tokio_stream::iter(chunks(q))).await }
    })
    .await;
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("query before setup"), "{s:?}");

    // A chunk stream that ends early.
    let s = refused("a short chunk stream", &f, |mut c| async move {
        let mut parts = chunks(vec![0; 3000]);
        parts[0].data.truncate(100);
        c.shard(tokio_stream::iter(parts)).await
    })
    .await;
    assert!(s.message().contains("ended after 100 of 3000"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_another_cas_certificate_is_refused() {
    let f = start(Limits::default()).await;
    // The other CA's client trusts only its own CA, so it refuses our server; and our
    // server refuses its certificate. Either way no call gets through.
    let e = step("another CA's caller", || async {
        match client(&f, &f.other).await {
            Err(e) => e,
            Ok(mut c) => {
                let s = status_of(c.query(tokio_stream::iter(chunks(vec![1])))).await;
                format!("{s:?}")
            }
        }
    })
    .await;
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("tls") || e.contains("transport"),
        "{e}"
    );

    // A client of the deployment (its client certificate, same CA): not the main
    // server, so refused by the cluster.
    let client_identity = TlsDir::open(&f.dir.path().join("ca"), Identity::Client).unwrap();
    let s = step("the client's certificate", || async {
        let mut c = client(&f, &client_identity).await.unwrap();
        status_of(c.query(tokio_stream::iter(chunks(vec![1])))).await
    })
    .await;
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");

    // A caller that trusts our CA but presents no certificate at all: the server
    // requires one.
    let ca = std::fs::read(f.dir.path().join("ca/ca.pem")).unwrap();
    let refused = step("an anonymous caller", || async {
        let anonymous = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.clone()))
            .domain_name("127.0.0.1");
        let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", f.addr))
            .unwrap()
            .tls_config(anonymous)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        match endpoint.connect().await {
            Err(e) => deploy::remote::source_chain(&e),
            Ok(channel) => {
                let mut c = ClusterClient::new(channel);
                let s = status_of(c.query(tokio_stream::iter(chunks(vec![1])))).await;
                format!("{s:?}")
            }
        }
    })
    .await;
    assert!(!refused.is_empty());
    assert!(!refused.contains("not a touchstone message"), "{refused}");
}
