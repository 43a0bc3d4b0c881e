//! Basic proxying: a request through the gateway reaches its upstream.

use crate::support::{client, Gateway, Upstream};

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_proxied_to_its_route_upstream() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "upstreams:
  a:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: all
    match: {{ path: {{ prefix: / }} }}
    upstream: a
",
        up.addr
    ));
    let resp = client().get(gw.url("/hello?x=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");
}
