//! The `websocket` section of a route: defaults, normalisation and each
//! refused value with its key path.

use std::time::Duration;

use crate::config::load_str_with_env;
use crate::config::test_support::{only_error, with_route};

fn route(websocket: &str) -> String {
    with_route(&format!(
        "{{id: r, upstream: users, websocket: {websocket}}}"
    ))
}

#[test]
fn an_empty_section_takes_the_documented_defaults() {
    let config = load_str_with_env(&route("{}"), &|_| None).unwrap();
    let ws = config.routes[0].websocket.as_ref().unwrap();
    assert!(ws.origins.is_empty());
    assert_eq!(ws.max_message_size.0, 1024 * 1024);
    assert_eq!(ws.idle_timeout.0, Duration::from_secs(60));
    assert_eq!(ws.ping_interval.0, Duration::from_secs(30));
    assert_eq!(ws.max_connections, None);
}

#[test]
fn origins_are_compared_in_lowercase() {
    let yaml = route("{origins: ['HTTPS://App.Example.com:8443']}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let ws = config.routes[0].websocket.as_ref().unwrap();
    assert_eq!(ws.origins, vec!["https://app.example.com:8443".to_string()]);
}

#[test]
fn an_origin_with_a_path_or_without_a_scheme_is_refused() {
    only_error(
        &route("{origins: ['https://app.example.com/']}"),
        "routes[0].websocket.origins[0]",
        "is not an origin",
    );
    only_error(
        &route("{origins: [app.example.com]}"),
        "routes[0].websocket.origins[0]",
        "is not an origin",
    );
}

#[test]
fn a_ping_interval_not_shorter_than_the_idle_timeout_is_refused() {
    only_error(
        &route("{idle_timeout: 10s, ping_interval: 10s}"),
        "routes[0].websocket.ping_interval",
        "after the idle timeout",
    );
    let off = load_str_with_env(&route("{idle_timeout: 10s, ping_interval: 0s}"), &|_| None);
    assert!(off.is_ok());
}

#[test]
fn zero_limits_are_refused() {
    only_error(
        &route("{max_message_size: 0}"),
        "routes[0].websocket.max_message_size",
        "refuses every message",
    );
    only_error(
        &route("{max_connections: 0}"),
        "routes[0].websocket.max_connections",
        "refuses every connection",
    );
    only_error(
        &route("{idle_timeout: 0s, ping_interval: 0s}"),
        "routes[0].websocket.idle_timeout",
        "close every connection",
    );
}

#[test]
fn an_unknown_key_is_refused() {
    only_error(
        &route("{max_msg_size: 1KiB}"),
        "routes[0].websocket.max_msg_size",
        "unknown key",
    );
}

#[test]
fn the_websocket_example_config_loads() {
    let text = include_str!("../../../conf/examples/websocket.yaml");
    let config = load_str_with_env(text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let chat = config.routes[0].websocket.as_ref().unwrap();
    assert_eq!(chat.max_message_size.0, 64 * 1024);
    assert_eq!(chat.max_connections, Some(20_000));
    let push = config.routes[1].websocket.as_ref().unwrap();
    assert_eq!(push.idle_timeout.0, Duration::from_secs(60));
}
