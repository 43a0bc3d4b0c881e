//! GraphQL subscriptions through the gateway: a GraphQL route whose
//! subscriptions travel over WebSocket to their own pool, a real
//! tokio-tungstenite server speaking `graphql-transport-ws`.
//!
//! The handshake carries no operation, so the route's GraphQL limits must
//! neither refuse it as an empty request nor let a query ride on it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::graphql::GraphqlUpstream;
use crate::support::raw;
use crate::support::websocket::{try_connect, WsUpstream};
use crate::support::{client, Gateway};

const PATIENCE: Duration = Duration::from_secs(10);

/// Limits that refuse any GET without a query and any document
/// but `{ me }`: a handshake judged as a GraphQL request would fail them.
fn strict_limits() -> String {
    let hash: String = Sha256::digest(b"{ me }")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "max_depth: 2, max_aliases: 1, max_root_fields: 1, max_complexity: 5, max_batch: 1, \
         introspection: false, persisted_queries: [\"{hash}\"]"
    )
}

/// A gateway with route `gql` at `/graphql` to `api`, `subs` defined as an
/// upstream, and `graphql:` settings `{ <settings> }`.
fn gateway(api: &GraphqlUpstream, subs: &WsUpstream, settings: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:
{}  subs:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: {}
    graphql: {{ {settings} }}
",
        api.yaml(),
        subs.addr,
        api.name
    ))
}

async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    let msg = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a message within the deadline")
        .expect("an open stream")
        .expect("a valid message");
    match msg {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn send_json(ws: &mut WebSocketStream<TcpStream>, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// The handshake's header lines, for raw requests.
const HANDSHAKE: [&str; 4] = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

#[tokio::test]
async fn a_subscription_runs_over_websocket_on_its_own_pool_despite_strict_limits() {
    let api = GraphqlUpstream::start("api").await;
    let subs = WsUpstream::graphql_ws("subs").await;
    let settings = format!(
        "{}, operations: [ {{ type: subscription, upstream: subs }} ]",
        strict_limits()
    );
    let gw = gateway(&api, &subs, &settings);

    let mut ws = try_connect(
        gw.port,
        "/graphql",
        &[("sec-websocket-protocol", "graphql-transport-ws")],
    )
    .await
    .expect("the handshake is not judged as an empty GraphQL request");
    send_json(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    let subscribe = json!({
        "id": "1", "type": "subscribe",
        "payload": { "query": "subscription { ticks }" }
    });
    send_json(&mut ws, subscribe).await;
    let next = next_json(&mut ws).await;
    assert_eq!(
        (
            &next["type"],
            &next["id"],
            &next["payload"]["data"]["served_by"]
        ),
        (&json!("next"), &json!("1"), &json!("subs"))
    );
    assert_eq!(next_json(&mut ws).await["type"], "complete");
    ws.close(None).await.unwrap();

    // Queries on the same route still go to the route's own pool.
    let resp = client()
        .post(gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(json!({ "query": "{ me }" }).to_string())
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["served_by"], "api");
    assert_eq!((subs.state.connections(), api.hits()), (1, 1));
}

#[tokio::test]
async fn an_upgrade_without_a_subscription_rule_reaches_the_routes_own_pool() {
    let decoy = GraphqlUpstream::start("decoy").await;
    let ws_up = WsUpstream::graphql_ws("own").await;
    // The route's own upstream is the WebSocket server; `decoy` is only
    // defined, so that a wrong choice would have somewhere to go.
    let gw = Gateway::start(&format!(
        "upstreams:
{}  own:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: own
    graphql: {{ {}, operations: [ {{ type: query, upstream: decoy }} ] }}
",
        decoy.yaml(),
        ws_up.addr,
        strict_limits()
    ));
    let mut ws = try_connect(
        gw.port,
        "/graphql",
        &[("sec-websocket-protocol", "graphql-transport-ws")],
    )
    .await
    .expect("the handshake passes the route's limits");
    send_json(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    assert_eq!((ws_up.state.connections(), decoy.hits()), (1, 0));
}

#[tokio::test]
async fn an_upgrade_carrying_a_query_in_its_query_string_is_refused_before_any_upstream() {
    // A GraphQL server that ignores `Upgrade` would run such a query as an
    // ordinary GET, past every limit of the route.
    let api = GraphqlUpstream::start("api").await;
    let subs = GraphqlUpstream::start("subs").await;
    let gw = Gateway::start(&format!(
        "upstreams:
{}{}routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: api
    graphql: {{ {}, operations: [ {{ type: subscription, upstream: subs }} ] }}
",
        api.yaml(),
        subs.yaml(),
        strict_limits()
    ));
    for target in [
        "/graphql?query=%7B__schema%7Btypes%7Bname%7D%7D%7D",
        "/graphql?extensions=%7B%22persistedQuery%22%3A%7B%22sha256Hash%22%3A%22ab%22%7D%7D",
        "/graphql?operationName=Secret",
        "/graphql?query=%7B&query=%7D",
    ] {
        let got = raw::get(gw.port, target, &HANDSHAKE).await;
        assert_eq!(got.status, 400, "{target}");
        assert!(
            got.json()["errors"][0]["extensions"]["code"].is_string(),
            "{target}"
        );
    }
    assert_eq!((api.hits(), subs.hits()), (0, 0));
}
