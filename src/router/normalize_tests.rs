//! Tests of the normalisation rules, one group per rule, plus properties over
//! arbitrary input.

use std::borrow::Cow;

use proptest::prelude::*;

use super::{normalize_host, normalize_path, NormalizeError};

fn normal(raw: &str) -> String {
    match normalize_path(raw) {
        Ok(path) => path.into_owned(),
        Err(e) => panic!("{raw:?} was refused: {e}"),
    }
}

#[test]
fn a_clean_path_is_borrowed_unchanged() {
    for raw in [
        "/",
        "/a",
        "/api/v1/users",
        "/a/b/",
        "/a%2Fb",
        "/caf%C3%A9",
        "/.well-known/x",
    ] {
        assert!(
            matches!(normalize_path(raw), Ok(Cow::Borrowed(p)) if p == raw),
            "{raw}"
        );
    }
}

#[test]
fn a_path_not_starting_with_a_slash_is_refused() {
    for raw in ["", "a/b", "*", "http://x/a", "%2Fa"] {
        assert_eq!(
            normalize_path(raw),
            Err(NormalizeError::NotAbsolute),
            "{raw:?}"
        );
    }
}

#[test]
fn escaped_unreserved_characters_are_decoded() {
    assert_eq!(normal("/%61dmin"), "/admin");
    assert_eq!(normal("/%41%5a%30%2D%5F%7e"), "/AZ0-_~");
}

#[test]
fn other_escapes_are_kept_with_uppercase_hex() {
    assert_eq!(normal("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(normal("/a%20b"), "/a%20b");
    assert_eq!(normal("/a%3fb"), "/a%3Fb");
}

#[test]
fn encoded_slash_and_backslash_stay_encoded_and_do_not_split_segments() {
    assert_eq!(normal("/a%2fb"), "/a%2Fb");
    assert_eq!(normal("/a%5cb"), "/a%5Cb");
    assert_eq!(normal("/a/%2e%2e%2fadmin"), "/a/..%2Fadmin");
    assert_eq!(normal("/a%2F..%2Fb"), "/a%2F..%2Fb");
    assert_eq!(normal("/a\\..\\b"), "/a\\..\\b");
}

#[test]
fn bad_truncated_and_nul_escapes_are_refused() {
    use NormalizeError::*;
    assert_eq!(normalize_path("/%zz"), Err(InvalidEscape { offset: 1 }));
    assert_eq!(normalize_path("/a%g1"), Err(InvalidEscape { offset: 2 }));
    assert_eq!(normalize_path("/a%4/b"), Err(InvalidEscape { offset: 2 }));
    assert_eq!(normalize_path("/a%4"), Err(TruncatedEscape { offset: 2 }));
    assert_eq!(normalize_path("/a%"), Err(TruncatedEscape { offset: 2 }));
    assert_eq!(normalize_path("/a%00b"), Err(EncodedNul { offset: 2 }));
}

#[test]
fn raw_control_characters_are_refused() {
    use NormalizeError::ControlCharacter;
    assert_eq!(normalize_path("/a\nb"), Err(ControlCharacter { offset: 2 }));
    assert_eq!(normalize_path("/\0"), Err(ControlCharacter { offset: 1 }));
    assert_eq!(
        normalize_path("/a\u{7f}"),
        Err(ControlCharacter { offset: 2 })
    );
    assert_eq!(
        normalize_path("/a\u{85}"),
        Err(ControlCharacter { offset: 2 })
    );
    assert_eq!(normal("/a%0Ab"), "/a%0Ab");
}

#[test]
fn repeated_slashes_are_merged() {
    assert_eq!(normal("//admin"), "/admin");
    assert_eq!(normal("/a///b//"), "/a/b/");
    assert_eq!(normal("//"), "/");
}

#[test]
fn dot_segments_are_resolved_without_climbing_above_root() {
    assert_eq!(normal("/public/../admin"), "/admin");
    assert_eq!(normal("/a/./b"), "/a/b");
    assert_eq!(normal("/a/b/../../../../c"), "/c");
    assert_eq!(normal("/.."), "/");
    assert_eq!(normal("/a/..b/c."), "/a/..b/c.");
    assert_eq!(normal("/a/.../b"), "/a/.../b");
}

#[test]
fn encoded_dot_segments_are_resolved_after_decoding() {
    assert_eq!(normal("/%2e%2e/admin"), "/admin");
    assert_eq!(normal("/public/%2E%2e/admin"), "/admin");
    assert_eq!(normal("/public/.%2e/admin"), "/admin");
    assert_eq!(normal("/a/%2e/b"), "/a/b");
}

#[test]
fn a_trailing_slash_is_preserved_and_a_final_dot_segment_leaves_one() {
    assert_eq!(normal("/a/b/"), "/a/b/");
    assert_eq!(normal("/a/."), "/a/");
    assert_eq!(normal("/a/b/.."), "/a/");
    assert_eq!(normal("/a/.."), "/");
    assert_eq!(normal("/a//"), "/a/");
}

#[test]
fn hosts_are_lowercased_without_port_or_trailing_dot() {
    assert_eq!(normalize_host("Example.COM"), "example.com");
    assert_eq!(normalize_host("example.com:8080"), "example.com");
    assert_eq!(normalize_host("example.com.:443"), "example.com");
    assert_eq!(normalize_host("example.com."), "example.com");
    assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    assert_eq!(normalize_host("[FE80::1]"), "[fe80::1]");
    assert_eq!(normalize_host("fe80::1"), "fe80::1");
    assert_eq!(normalize_host("host:"), "host");
}

#[test]
fn a_clean_host_is_borrowed() {
    assert!(matches!(
        normalize_host("api.example.com"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        normalize_host("api.example.com:80"),
        Cow::Borrowed(_)
    ));
}

/// Strings built from the pieces that matter to the rules, so the properties
/// see many dot-segments and escapes rather than mostly refused noise.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%5C"),
        Just("%41"),
        Just("%c3%a9"),
        Just("%"),
        Just("%0"),
        Just("a"),
        Just("b"),
        Just("\\"),
        Just("~"),
        Just("é"),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn check_output_properties(raw: &str) -> Result<(), TestCaseError> {
    let Ok(out) = normalize_path(raw) else {
        return Ok(());
    };
    prop_assert!(out.starts_with('/'));
    prop_assert!(!out.contains("//"), "{raw:?} -> {out:?}");
    prop_assert!(
        !out.contains("/./") && !out.contains("/../"),
        "{raw:?} -> {out:?}"
    );
    prop_assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{raw:?} -> {out:?}"
    );
    let again = normalize_path(&out);
    prop_assert!(
        matches!(&again, Ok(Cow::Borrowed(p)) if *p == out.as_ref()),
        "{raw:?} -> {out:?} -> {again:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalising_arbitrary_text_never_panics_and_is_idempotent(raw in any::<String>()) {
        check_output_properties(&raw)?;
        check_output_properties(&format!("/{raw}"))?;
    }

    #[test]
    fn normalising_path_like_text_is_idempotent_and_leaves_no_dot_segments(
        raw in path_like()
    ) {
        check_output_properties(&raw)?;
        check_output_properties(&format!("/{raw}"))?;
    }

    #[test]
    fn normalising_arbitrary_hosts_never_panics_and_leaves_no_uppercase(
        raw in any::<String>()
    ) {
        let host = normalize_host(&raw);
        prop_assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
        prop_assert!(host.len() <= raw.len());
    }
}
