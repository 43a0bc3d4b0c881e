//! The query rewrite's helpers, without a network.

#[test]
fn percent_encoded_names_are_compared_decoded() {
    assert_eq!(super::percent_decode("%61pi_key"), "api_key");
    assert_eq!(super::percent_decode("a+b%2"), "a b%2");
    assert_eq!(super::percent_encode("a b/é"), "a%20b%2F%C3%A9");
}
