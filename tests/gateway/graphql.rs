//! GraphQL through the gateway: real queries against a small GraphQL upstream.
//!
//! Each refusal is checked twice over: the client gets a GraphQL error
//! response with the right code and status, and the upstream's request
//! counter shows that nothing reached it.

use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::graphql::GraphqlUpstream;
use crate::support::{client, raw, Gateway};

const MODERN: &str = "application/graphql-response+json";

/// A gateway with one GraphQL route at `/graphql` to pool `api`, whose
/// `graphql:` settings are `settings` (flow style), plus `more` upstreams.
fn gateway(api: &GraphqlUpstream, settings: &str, more: &[&GraphqlUpstream]) -> Gateway {
    let mut yaml = format!("upstreams:\n{}", api.yaml());
    for up in more {
        yaml.push_str(&up.yaml());
    }
    yaml.push_str(&format!(
        "routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: {}
    graphql: {settings}
",
        api.name
    ));
    Gateway::start(&yaml)
}

struct Answer {
    status: u16,
    content_type: String,
    request_id: String,
    json: Value,
}

async fn post(gw: &Gateway, body: impl Into<reqwest::Body>, accept: Option<&str>) -> Answer {
    let mut req = client()
        .post(gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    answer(req.send().await.unwrap()).await
}

async fn answer(resp: reqwest::Response) -> Answer {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, request_id) = (header("content-type"), header("x-request-id"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answer {
        status,
        content_type,
        request_id,
        json,
    }
}

fn query(text: &str) -> String {
    json!({ "query": text }).to_string()
}

/// The `extensions.code` of the first error, or "" for a success.
fn code(a: &Answer) -> &str {
    a.json["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_query_body_reaches_the_upstream_byte_for_byte_over_http1_http2_and_chunked() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ max_depth: 5 }", &[]);
    let body = "{ \"query\" : \"query Hello { hello }\",\n \"variables\": {\"x\": \"\u{e9}\"} }";
    let got = post(&gw, body, None).await;
    assert_eq!(
        (got.status, &got.json["data"]["served_by"]),
        (200, &json!("api"))
    );
    assert_eq!(got.json["data"]["name"], "Hello");

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let resp = h2
        .post(gw.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer(resp).await.json["data"]["type"], "query");

    // Chunked, in pieces that split the JSON mid-token.
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let chunked = post(&gw, reqwest::Body::wrap_stream(stream::iter(pieces)), None).await;
    assert_eq!(chunked.json["data"]["served_by"], "api");

    // Bodies read before routing leave the connection ready for the next
    // request: one keep-alive client sends three in turn.
    let keep_alive = client();
    for _ in 0..3 {
        let resp = keep_alive
            .post(gw.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(resp).await.json["data"]["name"], "Hello");
    }

    let received = api.received();
    assert_eq!(received.len(), 6);
    for r in &received {
        assert_eq!(r.body, body.as_bytes(), "the upstream got another body");
    }
}

#[tokio::test]
async fn graphql_bodies_and_get_queries_reach_the_upstream() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ max_depth: 5 }", &[]);
    let resp = client()
        .post(gw.url("/graphql"))
        .header("content-type", "application/graphql")
        .body("query Text { hello }")
        .send()
        .await
        .unwrap();
    let text = answer(resp).await;
    assert_eq!(
        (text.status, &text.json["data"]["name"]),
        (200, &json!("Text"))
    );
    let resp = client()
        .get(gw.url("/graphql?query=query%20Q%7Bhello%7D&operationName=Q"))
        .send()
        .await
        .unwrap();
    let got = answer(resp).await;
    assert_eq!((got.status, &got.json["data"]["name"]), (200, &json!("Q")));
    assert_eq!(api.hits(), 2);
    let too_deep = client()
        .get(gw.url("/graphql?query=%7Ba%7Bb%7Bc%7Bd%7Be%7Bf%7D%7D%7D%7D%7D%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(&answer(too_deep).await), "DEPTH_LIMIT_EXCEEDED");
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn queries_mutations_named_operations_and_upgrades_go_to_their_pools() {
    let primary = GraphqlUpstream::start("primary").await;
    let read = GraphqlUpstream::start("read").await;
    let reports = GraphqlUpstream::start("reports").await;
    let subs = GraphqlUpstream::start("subs").await;
    let rules = "{ operations: [
        { type: query, name: Report, upstream: reports },
        { type: query, upstream: read },
        { type: mutation, upstream: primary },
        { type: subscription, upstream: subs } ] }";
    let gw = gateway(&primary, rules, &[&read, &reports, &subs]);
    let served_by = |a: Answer| a.json["data"]["served_by"].as_str().unwrap().to_string();
    assert_eq!(served_by(post(&gw, query("{ me }"), None).await), "read");
    assert_eq!(
        served_by(post(&gw, query("mutation { add }"), None).await),
        "primary"
    );
    let named = json!({
        "query": "query Report { total } query Other { me }",
        "operationName": "Report"
    });
    assert_eq!(
        served_by(post(&gw, named.to_string(), None).await),
        "reports"
    );
    let other = json!({
        "query": "query Report { total } query Other { me }",
        "operationName": "Other"
    });
    assert_eq!(served_by(post(&gw, other.to_string(), None).await), "read");
    // A batch mixing a query and a mutation matches no single rule.
    let mixed = format!("[{},{}]", query("{ me }"), query("mutation { add }"));
    let batch = post(&gw, mixed, None).await;
    assert_eq!(batch.json[1]["data"]["served_by"], "primary");
    // Subscriptions arrive as a WebSocket upgrade.
    let upgrade = raw::get(
        gw.port,
        "/graphql",
        &[
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: graphql-transport-ws",
        ],
    )
    .await;
    assert_eq!(upgrade.json()["data"]["served_by"], "subs");
    let handshake = &subs.received()[0];
    assert_eq!(handshake.headers["upgrade"], "websocket");
    assert_eq!(
        (read.hits(), primary.hits(), reports.hits(), subs.hits()),
        (2, 2, 1, 1)
    );
}

#[tokio::test]
async fn alias_amplification_is_refused_before_the_upstream() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ max_aliases: 10 }", &[]);
    let aliases: Vec<String> = (0..200).map(|i| format!("a{i}: expensive")).collect();
    let body = query(&format!("{{ {} }}", aliases.join(" ")));
    let legacy = post(&gw, body.clone(), None).await;
    assert_eq!(
        (legacy.status, code(&legacy)),
        (200, "ALIAS_LIMIT_EXCEEDED")
    );
    assert!(legacy.content_type.starts_with("application/json"));
    assert!(legacy.json.get("data").is_none());
    let modern = post(&gw, body, Some(MODERN)).await;
    assert_eq!(
        (modern.status, code(&modern)),
        (400, "ALIAS_LIMIT_EXCEEDED")
    );
    assert!(modern.content_type.starts_with(MODERN));
    assert_eq!(
        gw.access_line(&modern.request_id)["error"],
        "ALIAS_LIMIT_EXCEEDED"
    );
    // Ten aliases spread through a fragment three times are thirty.
    let spread = "{ ...F ...F ...F } fragment F on Query { a: x b: x c: x d: x }";
    assert_eq!(
        code(&post(&gw, query(spread), None).await),
        "ALIAS_LIMIT_EXCEEDED"
    );
    assert_eq!(api.hits(), 0);
    let fine = post(&gw, query("{ a: x b: x }"), None).await;
    assert_eq!(fine.json["data"]["served_by"], "api");
}

#[tokio::test]
async fn deeply_nested_fragments_and_fragment_cycles_are_refused() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ max_depth: 5 }", &[]);
    let mut nested = String::from("{ ...F0 }");
    for i in 0..8 {
        nested.push_str(&format!(" fragment F{i} on T {{ f {{ ...F{} }} }}", i + 1));
    }
    nested.push_str(" fragment F8 on T { leaf }");
    let deep = post(&gw, query(&nested), Some(MODERN)).await;
    assert_eq!((deep.status, code(&deep)), (400, "DEPTH_LIMIT_EXCEEDED"));
    let cycle = "{ ...A } fragment A on T { a { ...B } } fragment B on T { b { ...A } }";
    let cyclic = post(&gw, query(cycle), Some(MODERN)).await;
    assert_eq!((cyclic.status, code(&cyclic)), (400, "FRAGMENT_CYCLE"));
    let hostile = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
    let refused = client()
        .post(gw.url("/graphql"))
        .header("content-type", "application/graphql")
        .header("accept", MODERN)
        .body(hostile[..60_000].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(code(&answer(refused).await), "NESTING_LIMIT_EXCEEDED");
    assert_eq!(api.hits(), 0);
    let shallow = "{ ...F } fragment F on T { a { b { c } } }";
    assert_eq!(
        post(&gw, query(shallow), None).await.json["data"]["served_by"],
        "api"
    );
}

#[tokio::test]
async fn batched_queries_that_each_pass_are_refused_together_and_batches_are_capped() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(
        &api,
        "{ max_complexity: 10, max_root_fields: 4, max_batch: 3 }",
        &[],
    );
    // Complexity 1 + 2 * (1 + 1) = 5 each.
    let each = query("{ users(first: 2) { id name } }");
    assert_eq!(
        post(&gw, each.clone(), None).await.json["data"]["served_by"],
        "api"
    );
    let two = post(&gw, format!("[{each},{each}]"), None).await;
    assert_eq!(two.json[1]["data"]["served_by"], "api");
    let three = post(&gw, format!("[{each},{each},{each}]"), Some(MODERN)).await;
    assert_eq!(
        (three.status, code(&three)),
        (400, "COMPLEXITY_LIMIT_EXCEEDED")
    );
    let wide = query("{ a b c }");
    let two_wide = post(&gw, format!("[{wide},{wide}]"), None).await;
    assert_eq!(code(&two_wide), "ROOT_FIELD_LIMIT_EXCEEDED");
    let small = query("{ a }");
    let four = post(&gw, format!("[{small},{small},{small},{small}]"), None).await;
    assert_eq!(code(&four), "BATCH_LIMIT_EXCEEDED");
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn introspection_hidden_in_a_fragment_or_behind_an_alias_is_refused() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ introspection: false }", &[]);
    let hidden = [
        "{ __schema { types { name } } }",
        "{ innocent: __schema { queryType { name } } }",
        "{ me { ...Sneaky } } fragment Sneaky on User { t: __type(name: \"Query\") { name } }",
        "{ ... on Query { ...Deeper } } fragment Deeper on Query { __schema { types { name } } }",
    ];
    for text in hidden {
        let refused = post(&gw, query(text), Some(MODERN)).await;
        assert_eq!(
            (refused.status, code(&refused)),
            (400, "INTROSPECTION_DISABLED"),
            "{text}"
        );
    }
    assert_eq!(api.hits(), 0);
    let typename = post(&gw, query("{ me { __typename } }"), None).await;
    assert_eq!(typename.json["data"]["served_by"], "api");
}

#[tokio::test]
async fn only_allow_listed_documents_reach_the_upstream() {
    let api = GraphqlUpstream::start("api").await;
    let allowed = "query Me { me { id } }";
    let gw = gateway(
        &api,
        &format!("{{ persisted_queries: ['{}'] }}", sha256_hex(allowed)),
        &[],
    );
    let other = post(&gw, query("query Me { me { id password } }"), Some(MODERN)).await;
    assert_eq!(
        (other.status, code(&other)),
        (400, "PERSISTED_QUERY_NOT_ALLOWED")
    );
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "00"}}});
    assert_eq!(
        code(&post(&gw, by_hash.to_string(), None).await),
        "PERSISTED_QUERY_NOT_ALLOWED"
    );
    assert_eq!(api.hits(), 0);
    assert_eq!(
        post(&gw, query(allowed), None).await.json["data"]["name"],
        "Me"
    );
    let listed = json!({
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(allowed)}}
    });
    post(&gw, listed.to_string(), None).await;
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_one_under_64_kib_passes_whole() {
    let api = GraphqlUpstream::start("api").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:
  - id: small
    match: {{ path: {{ exact: /graphql }} }}
    upstream: api
    graphql: {{ max_body_bytes: 1KiB }}
  - id: default-cap
    match: {{ path: {{ exact: /big }} }}
    upstream: api
    graphql: {{}}
",
        api.yaml()
    ));
    let padded = |n: usize| query(&format!("{{ a }}{}", " ".repeat(n)));
    let declared = post(&gw, padded(2000), Some(MODERN)).await;
    assert_eq!((declared.status, code(&declared)), (413, "BODY_TOO_LARGE"));
    assert!(declared.content_type.starts_with(MODERN));
    let pieces: Vec<Result<Bytes, std::io::Error>> = padded(2000)
        .into_bytes()
        .chunks(500)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let chunked = post(&gw, reqwest::Body::wrap_stream(stream::iter(pieces)), None).await;
    assert_eq!((chunked.status, code(&chunked)), (413, "BODY_TOO_LARGE"));
    let big = |body: String| {
        client()
            .post(gw.url("/big"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let over = answer(big(padded(70_000)).await.unwrap()).await;
    assert_eq!((over.status, code(&over)), (413, "BODY_TOO_LARGE"));
    assert_eq!(api.hits(), 0);
    let body = padded(60_000);
    let under = answer(big(body.clone()).await.unwrap()).await;
    assert_eq!(under.json["data"]["served_by"], "api");
    assert_eq!(api.received()[0].body, body.as_bytes());
}

#[tokio::test]
async fn a_mutation_over_get_and_malformed_requests_never_reach_the_upstream() {
    let api = GraphqlUpstream::start("api").await;
    let gw = gateway(&api, "{ max_depth: 5 }", &[]);
    let resp = client()
        .get(gw.url("/graphql?query=mutation%7Badd%7D"))
        .send()
        .await
        .unwrap();
    let get = answer(resp).await;
    assert_eq!((get.status, code(&get)), (405, "METHOD_NOT_ALLOWED"));
    let bad_json = post(&gw, "{\"query\": ", None).await;
    assert_eq!((bad_json.status, code(&bad_json)), (400, "BAD_REQUEST"));
    let no_query = post(&gw, "{\"variables\": {}}", None).await;
    assert_eq!(no_query.status, 400);
    let unparsable = post(&gw, query("{ a { "), None).await;
    assert_eq!(
        (unparsable.status, code(&unparsable)),
        (200, "GRAPHQL_PARSE_FAILED")
    );
    let resp = client()
        .post(gw.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{ a }")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(resp).await.status, 415);
    assert_eq!(api.hits(), 0);
}

#[tokio::test]
async fn a_body_read_before_routing_is_sent_again_when_the_first_backend_refuses() {
    let api = GraphqlUpstream::start("api").await;
    let dead = crate::support::free_port();
    let gw = Gateway::start(&format!(
        "upstreams:
  api:
    backends: [{{ address: \"127.0.0.1:{dead}\" }}, {{ address: \"{}\" }}]
    retries: 1
routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: api
    graphql: {{ max_depth: 5 }}
",
        api.addr
    ));
    let body = query("mutation Save { save(text: \"once\") }");
    for _ in 0..4 {
        let got = post(&gw, body.clone(), None).await;
        assert_eq!(got.json["data"]["name"], "Save");
    }
    let received = api.received();
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.body == body.as_bytes()));
    // The dead backend was tried: the retries above were real.
    let refused = gw
        .metrics()
        .lines()
        .any(|l| l.starts_with("portico_upstream_connect_failures_total{") && !l.ends_with(" 0"));
    assert!(refused, "no connect failure was counted");
}

#[tokio::test]
async fn the_gateways_other_refusals_on_a_graphql_route_are_graphql_errors_too() {
    let dead = crate::support::free_port();
    let gw = Gateway::start(&format!(
        "upstreams:
  gone:
    backends: [{{ address: \"127.0.0.1:{dead}\" }}]
routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: gone
    graphql: {{ max_depth: 5 }}
  - id: walled
    match: {{ path: {{ exact: /walled }} }}
    upstream: gone
    policies: {{ ip_filter: {{ deny: [127.0.0.0/8] }} }}
    graphql: {{ max_depth: 5 }}
"
    ));
    let unreachable = post(&gw, query("{ me }"), Some(MODERN)).await;
    assert_eq!(
        (unreachable.status, code(&unreachable)),
        (502, "UPSTREAM_FAILED")
    );
    assert!(unreachable.content_type.starts_with(MODERN));
    assert_eq!(
        unreachable.json["errors"][0]["extensions"]["request_id"],
        json!(unreachable.request_id)
    );
    let resp = client()
        .post(gw.url("/walled"))
        .header("content-type", "application/json")
        .body(query("{ me }"))
        .send()
        .await
        .unwrap();
    let denied = answer(resp).await;
    assert_eq!((denied.status, code(&denied)), (403, "IP_DENIED"));
    assert!(denied.content_type.starts_with("application/json"));
}

#[tokio::test]
async fn a_body_threat_protection_already_read_is_analysed_and_forwarded_whole() {
    let api = GraphqlUpstream::start("api").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:
  - id: gql
    match: {{ path: {{ exact: /graphql }} }}
    upstream: api
    policies: {{ threat_protection: {{ body_limit: 16KiB }} }}
    graphql: {{ max_aliases: 1 }}
",
        api.yaml()
    ));
    let body = query("query Fine { me { name } }");
    let got = post(&gw, body.clone(), None).await;
    assert_eq!(got.json["data"]["name"], "Fine");
    assert_eq!(api.received()[0].body, body.as_bytes());
    let aliased = post(&gw, query("{ a: me b: me }"), None).await;
    assert_eq!(code(&aliased), "ALIAS_LIMIT_EXCEEDED");
    assert_eq!(api.hits(), 1);
}
