//! The `compression` section of a route: defaults, normalisation and each
//! refused value with its key path.

use crate::config::load_str_with_env;
use crate::config::schema::Coding;
use crate::config::test_support::{only_error, with_route};

fn route(compression: &str) -> String {
    with_route(&format!(
        "{{id: r, upstream: users, compression: {compression}}}"
    ))
}

#[test]
fn an_empty_section_takes_the_documented_defaults() {
    let config = load_str_with_env(&route("{}"), &|_| None).unwrap();
    let c = config.routes[0].compression.as_ref().unwrap();
    assert!(c.enabled);
    assert_eq!(c.algorithms, vec![Coding::Zstd, Coding::Br, Coding::Gzip]);
    assert_eq!(c.level, None);
    assert_eq!(c.min_size.0, 1024);
    assert!(c.content_types.contains(&"application/json".to_string()));
}

#[test]
fn media_types_are_compared_in_lowercase() {
    let config = load_str_with_env(&route("{content_types: ['Text/*']}"), &|_| None).unwrap();
    let c = config.routes[0].compression.as_ref().unwrap();
    assert_eq!(c.content_types, vec!["text/*".to_string()]);
}

#[test]
fn a_level_outside_a_listed_codings_range_is_refused() {
    only_error(
        &route("{algorithms: [gzip, zstd], level: 12}"),
        "routes[0].compression.level",
        "outside gzip's range 1-9",
    );
}

#[test]
fn a_coding_listed_twice_is_refused() {
    only_error(
        &route("{algorithms: [br, br]}"),
        "routes[0].compression.algorithms[1]",
        "listed twice",
    );
}

#[test]
fn an_empty_coding_list_is_refused() {
    only_error(
        &route("{algorithms: []}"),
        "routes[0].compression.algorithms",
        "no coding is listed",
    );
}

#[test]
fn a_binary_or_zipped_media_type_is_refused() {
    only_error(
        &route("{content_types: ['image/png']}"),
        "routes[0].compression.content_types[0]",
        "does not compress",
    );
    only_error(
        &route("{content_types: ['application/zip']}"),
        "routes[0].compression.content_types[0]",
        "does not compress",
    );
}

#[test]
fn a_malformed_media_type_is_refused() {
    only_error(
        &route("{content_types: ['json']}"),
        "routes[0].compression.content_types[0]",
        "is not a media type",
    );
}

#[test]
fn an_unknown_coding_is_refused() {
    let err = load_str_with_env(&route("{algorithms: [deflate]}"), &|_| None).unwrap_err();
    assert!(err.to_string().contains("routes[0].compression"), "{err}");
}
