//! Generates the gRPC client and server code of the two services from Rust definitions
//! (tonic-build's `manual` builder): no .proto file and no protoc on any machine. The
//! messages are the hand-written prost types of `src/wire_grpc.rs`.

fn streamed(name: &str, route: &str) -> tonic_build::manual::Method {
    tonic_build::manual::Method::builder()
        .name(name)
        .route_name(route)
        .input_type("crate::grpc::Chunk")
        .output_type("crate::grpc::Chunk")
        .codec_path("tonic_prost::ProstCodec")
        .client_streaming()
        .server_streaming()
        .build()
}

fn main() {
    let main = tonic_build::manual::Service::builder()
        .name("Main")
        .package("touchstone")
        .method(streamed("setup", "Setup"))
        .method(streamed("enrol", "Enrol"))
        .method(streamed("update", "Update"))
        .method(streamed("identify", "Identify"))
        .method(streamed("status", "Status"))
        .build();
    let cluster = tonic_build::manual::Service::builder()
        .name("Cluster")
        .package("touchstone")
        .method(streamed("setup", "Setup"))
        .method(streamed("shard", "Shard"))
        .method(streamed("update", "Update"))
        .method(streamed("query", "Query"))
        .method(streamed("reset", "Reset"))
        .build();
    tonic_build::manual::Builder::new().compile(&[main, cluster]);
}
