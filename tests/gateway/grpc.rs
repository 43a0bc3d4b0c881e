//! gRPC through the gateway: a real tonic server and client.

use std::time::Duration;

use futures_util::future::join_all;
use tonic::Code;

use crate::support::grpc::{h2c_upstream, EchoClient, GrpcServer, Msg, SERVICE};
use crate::support::Gateway;

/// A gateway with pool `echo` over h2c to `server` (plus `extra` upstream
/// keys) and one route `grpc` matching the whole service.
fn gateway_for(server: &GrpcServer, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n{}routes:
  - id: grpc
    match: {{ grpc: {{ service: {SERVICE} }} }}
    upstream: echo
",
        h2c_upstream("echo", &[server], extra)
    ))
}

async fn client_of(gw: &Gateway) -> EchoClient {
    EchoClient::connect(format!("127.0.0.1:{}", gw.port).parse().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn all_four_call_kinds_pass_with_their_trailers() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;

    let reply = client.unary(Msg::text("hello")).await.unwrap();
    assert_eq!(reply.text, "hello");

    let ask = Msg {
        count: 5,
        ..Msg::text("tick")
    };
    let ticks = client.serve(ask).await.unwrap();
    assert_eq!(
        ticks.iter().map(|m| m.count).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    let parts = ["a", "b", "c"].map(Msg::text).to_vec();
    let joined = client.collect(parts).await.unwrap();
    assert_eq!((joined.text.as_str(), joined.count), ("abc", 3));

    let said = ["x", "y", "z", "w"].map(Msg::text).to_vec();
    let (echoes, trailers) = client.chat(said).await.unwrap();
    let texts: Vec<&str> = echoes.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["x", "y", "z", "w"]);
    assert_eq!(trailers.get("x-echoed").unwrap(), "4");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_status_from_the_server_reaches_the_client_unchanged() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;
    let ask = Msg {
        fail_code: Code::AlreadyExists as i32,
        ..Msg::text("dup")
    };
    let status = client.unary(ask).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "asked to fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_four_mebibyte_message_passes_both_ways() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let ask = Msg {
        data: data.clone(),
        ..Msg::text("big")
    };
    let reply = client.unary(ask).await.unwrap();
    assert_eq!(reply.data.len(), data.len());
    assert!(reply.data == data, "the 4 MiB payload came back altered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_streams_on_one_connection_share_few_upstream_connections() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "    max_h2_streams: 100\n");
    // One client connection: every clone of the client shares its channel.
    let client = client_of(&gw).await;
    let calls = (0..1000).map(|i| {
        let mut c = client.clone();
        async move {
            let ask = Msg {
                delay_ms: 20,
                ..Msg::text(&format!("call {i}"))
            };
            c.unary(ask).await.map(|r| r.text == format!("call {i}"))
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(120), join_all(calls))
        .await
        .expect("1,000 calls did not finish in two minutes");
    let ok = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let failed: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .take(3)
        .collect();
    assert_eq!(ok, 1000, "some calls failed, e.g. {failed:?}");
    assert_eq!(server.calls(), 1000);
    // Gateway's downstream limit is 100 streams, and each upstream
    // connection carries up to 100: a handful of connections, not 1,000.
    let upstream_connections = server.connections();
    assert!(
        upstream_connections <= 20,
        "{upstream_connections} upstream connections for 1,000 calls"
    );
}
