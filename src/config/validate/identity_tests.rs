//! Config errors of the identity sections, each named by its key path.

use crate::auth::api_key::hash_line;
use crate::config::load_str_with_env;
use crate::config::test_support::{errors_of, only_error, with_route, with_section};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn provider(body: &str) -> String {
    with_section(&format!("jwt_providers:\n  corp: {body}"))
}

#[test]
fn a_full_identity_config_loads() {
    let yaml = format!(
        "{}identity:
  realm: api
  api_key: {{header: x-key, query: key}}
  consumer_headers: {{id: x-who, tier: x-plan, groups: x-teams}}
consumers:
  - id: mobile
    tier: gold
    groups: [apps]
    credentials:
      api_keys: ['{}']
jwt_providers:
  corp:
    issuer: https://idp.example
    audiences: [api]
    keys: [{{kid: a, alg: [HS256, HS512], secret: '{SECRET}'}}]
    jwks_url: http://127.0.0.1:9/jwks.json
    jwks_refresh: 1m
    leeway: 10s
    required_claims: [tenant]
    forward_claims: {{tenant: x-tenant}}
    token_from: {{header: authorization, cookie: session}}
auth: {{methods: [api_key, 'jwt:corp'], scopes: [read]}}
",
        with_route("{id: r, upstream: users, auth: none}"),
        hash_line(b"key")
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.consumers.len(), 1);
    assert_eq!(config.jwt_providers["corp"].keys[0].alg, ["HS256", "HS512"]);
}

#[test]
fn a_route_naming_an_unknown_provider_is_refused_with_the_known_ones() {
    let yaml = format!(
        "{}{}",
        with_route("{id: r, upstream: users, auth: {methods: ['jwt:nope']}}"),
        format_args!("jwt_providers:\n  corp: {{keys: [{{alg: HS256, secret: '{SECRET}'}}]}}\n")
    );
    let e = only_error(
        &yaml,
        "routes[0].auth.methods[0]",
        "no JWT provider named \"nope\"",
    );
    assert!(e.fix.contains("corp"), "{e}");
}

#[test]
fn an_empty_method_list_points_at_auth_none() {
    let e = only_error(
        &with_route("{id: r, upstream: users, auth: {methods: []}}"),
        "routes[0].auth.methods",
        "no authentication method",
    );
    assert!(e.fix.contains("auth: none"), "{e}");
    only_error(
        &with_route("{id: r, upstream: users, auth: off}"),
        "routes[0].auth",
        "unknown auth \"off\"",
    );
    only_error(
        &with_section("auth: {methods: [oauth]}"),
        "auth.methods[0]",
        "unknown method",
    );
}

#[test]
fn a_plain_api_key_in_place_of_its_hash_is_refused() {
    let e = only_error(
        &with_section("consumers: [{id: a, credentials: {api_keys: [my-secret-key]}}]"),
        "consumers[0].credentials.api_keys[0]",
        "does not start with `sha256:`",
    );
    assert!(e.fix.contains("portico hash-key"), "{e}");
}

#[test]
fn a_password_hash_that_is_not_argon2_is_refused() {
    only_error(
        &with_section(
            "consumers: [{id: a, credentials: {basic: {username: u, password_hash: hunter2}}}]",
        ),
        "consumers[0].credentials.basic.password_hash",
        "not a PHC hash",
    );
}

#[test]
fn duplicate_consumers_keys_and_usernames_are_refused() {
    let hash = hash_line(b"k");
    let errors = errors_of(&with_section(&format!(
        "consumers:
  - {{id: a, credentials: {{api_keys: ['{hash}'], basic: {{username: u, password_hash: x}}}}}}
  - {{id: a, credentials: {{api_keys: ['{hash}']}}}}
"
    )));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"consumers[1].id"), "{paths:?}");
    assert!(
        paths.contains(&"consumers[1].credentials.api_keys[0]"),
        "{paths:?}"
    );
}

#[test]
fn an_unknown_algorithm_is_refused_with_the_accepted_ones() {
    let e = only_error(
        &provider(&format!("{{keys: [{{alg: HS257, secret: '{SECRET}'}}]}}")),
        "jwt_providers.corp.keys[0].alg",
        "unknown algorithm \"HS257\"",
    );
    assert!(e.fix.contains("EdDSA"), "{e}");
    only_error(
        &provider(&format!("{{keys: [{{alg: none, secret: '{SECRET}'}}]}}")),
        "jwt_providers.corp.keys[0].alg",
        "unknown algorithm \"none\"",
    );
}

#[test]
fn a_key_mixing_families_is_refused() {
    only_error(
        &provider(&format!(
            "{{keys: [{{alg: [HS256, RS256], secret: '{SECRET}'}}]}}"
        )),
        "jwt_providers.corp.keys[0].alg",
        "different families",
    );
}

#[test]
fn a_short_hmac_secret_is_refused() {
    only_error(
        &provider("{keys: [{alg: HS256, secret: short}]}"),
        "jwt_providers.corp.keys[0].secret",
        "5 bytes, fewer than the 32",
    );
}

#[test]
fn an_rsa_algorithm_with_a_secret_is_refused() {
    only_error(
        &provider(&format!("{{keys: [{{alg: RS256, secret: '{SECRET}'}}]}}")),
        "jwt_providers.corp.keys[0].secret",
        "only HS algorithms take a `secret`",
    );
}

#[test]
fn an_unreadable_pem_file_and_a_bad_pem_are_refused() {
    only_error(
        &provider("{keys: [{alg: RS256, pem_file: /nonexistent/key.pem}]}"),
        "jwt_providers.corp.keys[0].pem_file",
        "cannot read \"/nonexistent/key.pem\"",
    );
    only_error(
        &provider("{keys: [{alg: ES256, pem: 'not a pem'}]}"),
        "jwt_providers.corp.keys[0].pem",
        "not a EC public key",
    );
}

#[test]
fn a_provider_without_keys_or_with_a_jwks_url_of_another_scheme_is_refused() {
    only_error(&provider("{issuer: x}"), "jwt_providers.corp", "no keys");
    only_error(
        &provider("{jwks_url: 'ftp://idp.example/jwks'}"),
        "jwt_providers.corp.jwks_url",
        "is not an http or https URL",
    );
    only_error(
        &provider("{jwks_url: 'http://idp.example/jwks', jwks_refresh: 1s}"),
        "jwt_providers.corp.jwks_refresh",
        "at most every 10s",
    );
}

#[test]
fn scopes_without_a_jwt_method_are_refused() {
    only_error(
        &with_section("auth: {methods: [api_key], scopes: [read]}"),
        "auth.scopes",
        "come from JWTs",
    );
}

#[test]
fn every_identity_problem_is_reported_in_one_pass() {
    let errors = errors_of(&format!(
        "{}identity: {{realm: 'a\"b', api_key: {{header: 'bad header'}}}}
consumers: [{{id: 'a b', credentials: {{api_keys: [nope]}}}}]
jwt_providers:
  corp: {{keys: [{{alg: HS999, secret: x}}, {{alg: HS256, secret: y}}]}}
",
        with_route("{id: r, upstream: users, auth: {methods: ['jwt:other', basic, basic]}}")
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "routes[0].auth.methods[0]",
        "routes[0].auth.methods[2]",
        "identity.realm",
        "identity.api_key.header",
        "consumers[0].id",
        "consumers[0].credentials.api_keys[0]",
        "jwt_providers.corp.keys[0].alg",
        "jwt_providers.corp.keys[1].secret",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn the_auth_example_config_loads() {
    let text = include_str!("../../../conf/examples/auth.yaml");
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
               AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let env = |name: &str| match name {
        "OPS_PASSWORD_HASH" => Some(phc.to_owned()),
        "PARTNER_JWT_SECRET" => Some(SECRET.to_owned()),
        _ => None,
    };
    let config = load_str_with_env(text, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.consumers.len(), 3);
    assert_eq!(config.jwt_providers.len(), 2);
    assert_eq!(
        hash_line(b"example-mobile-key-replace-me"),
        config.consumers[0].credentials.api_keys[0]
    );
}
