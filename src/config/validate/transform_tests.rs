//! The `transform` section of a route: what loads and each refused value
//! with its key path.

use crate::config::load_str_with_env;
use crate::config::test_support::{only_error, with_route};

fn route(transform: &str) -> String {
    with_route(&format!(
        "{{id: r, upstream: users, transform: {transform}}}"
    ))
}

#[test]
fn a_full_section_loads() {
    let yaml = route(
        "{request: {headers: {add: {x-who: '$${consumer}@$${client_ip}'}, set: {x-route: \
         '$${route}'}, rename: {x-old: x-new}, remove: [cookie]}, query: {add: {src: gw}, \
         remove: [api_key], rename: {q: query}}, json_body: {remove: [user.password], \
         max_bytes: 8KiB, oversize: reject}}, response: {headers: {remove: [server]}, \
         json_body: {add: {served_by: portico}}}}",
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let t = config.routes[0].transform.as_ref().unwrap();
    let req = t.request.as_ref().unwrap();
    assert_eq!(req.headers.add["x-who"], "${consumer}@${client_ip}");
    assert_eq!(req.json_body.as_ref().unwrap().max_bytes.0, 8 * 1024);
}

#[test]
fn an_unknown_template_variable_names_its_key() {
    only_error(
        &route("{request: {headers: {set: {x-a: '$${tenant}'}}}}"),
        "routes[0].transform.request.headers.set.x-a",
        "unknown variable ${tenant}",
    );
}

#[test]
fn framing_headers_cannot_be_changed() {
    only_error(
        &route("{response: {headers: {remove: [content-length]}}}"),
        "routes[0].transform.response.headers.remove[0]",
        "cannot be changed",
    );
    only_error(
        &route("{request: {headers: {rename: {x-a: host}}}}"),
        "routes[0].transform.request.headers.rename.x-a",
        "cannot be changed",
    );
}

#[test]
fn a_query_name_needing_encoding_is_refused() {
    only_error(
        &route("{request: {query: {add: {'a b': x}}}}"),
        "routes[0].transform.request.query.add.a b",
        "not a plain query parameter name",
    );
}

#[test]
fn an_unknown_oversize_choice_is_refused() {
    let err = load_str_with_env(
        &route("{request: {json_body: {oversize: truncate}}}"),
        &|_| None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("routes[0].transform"), "{err}");
}

#[test]
fn the_shaping_example_loads() {
    let text = include_str!("../../../conf/examples/shaping.yaml");
    let config = load_str_with_env(text, &|_| None).unwrap();
    assert!(config.routes[0].compression.is_some());
    let orders = config.routes[1].transform.as_ref().unwrap();
    let set = &orders.request.as_ref().unwrap().headers.set;
    assert_eq!(set["x-client-ip"], "${client_ip}");
}
