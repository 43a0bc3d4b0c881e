use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn op(query: &str) -> Operation {
    analyse(query, None, None).unwrap()
}

fn post_json(body: &str) -> Result<Extracted, Rejection> {
    extract(Transport::Post {
        content_type: Some("application/json; charset=utf-8"),
        query_string: None,
        body: body.as_bytes(),
    })
}

fn judge(limits: &Limits, body: &str) -> Result<Vec<Inspected>, Rejection> {
    inspect(limits, &post_json(body)?, false)
}

#[test]
fn depth_counts_fields_through_fragments_and_inline_fragments() {
    let q = "query { a { b { ...F } } } fragment F on T { c { ... on T { d } } }";
    assert_eq!(op(q).depth, 4);
    assert_eq!(op("{ a }").depth, 1);
}

#[test]
fn a_fragment_cycle_is_refused_not_followed() {
    let q = "{ ...A } fragment A on Q { a ...B } fragment B on Q { b ...A }";
    let e = analyse(q, None, None).unwrap_err();
    assert_eq!(e.code, "FRAGMENT_CYCLE");
    let own = "{ ...A } fragment A on Q { a { ...A } }";
    assert_eq!(analyse(own, None, None).unwrap_err().code, "FRAGMENT_CYCLE");
}

#[test]
fn an_unknown_fragment_is_refused() {
    let e = analyse("{ ...Nope }", None, None).unwrap_err();
    assert_eq!(e.code, "UNKNOWN_FRAGMENT");
}

#[test]
fn aliases_are_counted_again_at_each_spread_of_their_fragment() {
    let q = "{ ...F ...F x: a { ...F } } fragment F on Q { p: a q: b }";
    let o = op(q);
    assert_eq!(o.aliases, 7);
    assert_eq!(o.root_fields, 5);
}

#[test]
fn exponential_fragment_spreading_is_measured_quickly_and_saturates_nothing_wrongly() {
    // Each fragment spreads the previous one twice: 2^40 fields once expanded.
    let mut q = String::from("{ ...F40 } fragment F0 on Q { a }");
    for i in 1..=40 {
        q.push_str(&format!(
            " fragment F{i} on Q {{ ...F{p} ...F{p} }}",
            p = i - 1
        ));
    }
    let o = op(&q);
    assert_eq!(o.root_fields, 1 << 40);
    assert_eq!(o.complexity, 1 << 40);
}

#[test]
fn complexity_multiplies_by_literal_and_variable_list_sizes() {
    assert_eq!(
        op("{ users(first: 10) { name friends(first: 10) { name } } }").complexity,
        121
    );
    let vars = serde_json::json!({"n": 50});
    let q = "query Q($n: Int, $m: Int = 7) { a(limit: $n) { b } c(last: $m) { d } }";
    let o = analyse(q, None, vars.as_object()).unwrap();
    assert_eq!(o.complexity, (1 + 50) + (1 + 7));
    // Sizes that are not integers count as 1.
    assert_eq!(op("{ a(first: \"x\") { b } }").complexity, 2);
}

#[test]
fn introspection_is_found_behind_aliases_and_fragments_but_typename_is_not_it() {
    assert!(op("{ s: __schema { types { name } } }").introspection);
    assert!(op("{ ...F } fragment F on Query { __type(name: \"X\") { name } }").introspection);
    assert!(op("{ a { ... on A { ...G } } } fragment G on A { x: __schema { q } }").introspection);
    assert!(!op("{ __typename a { __typename } }").introspection);
}

#[test]
fn the_operation_is_selected_by_name_and_ambiguity_is_refused() {
    let doc = "query A { a } mutation B { b }";
    let b = analyse(doc, Some("B"), None).unwrap();
    assert_eq!(
        (b.kind, b.name.as_deref()),
        (OperationKind::Mutation, Some("B"))
    );
    assert_eq!(
        analyse(doc, None, None).unwrap_err().code,
        "OPERATION_NAME_REQUIRED"
    );
    assert_eq!(
        analyse(doc, Some("C"), None).unwrap_err().code,
        "OPERATION_NOT_FOUND"
    );
    let only = analyse("subscription S { s }", None, None).unwrap();
    assert_eq!(
        (only.kind, only.name.as_deref()),
        (OperationKind::Subscription, Some("S"))
    );
}

#[test]
fn a_hundred_thousand_deep_document_is_refused_without_recursing() {
    let deep = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
    assert_eq!(
        analyse(&deep, None, None).unwrap_err().code,
        "NESTING_LIMIT_EXCEEDED"
    );
    let list = format!(
        "{{ a(x: {}1{}) }}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        analyse(&list, None, None).unwrap_err().code,
        "NESTING_LIMIT_EXCEEDED"
    );
}

#[test]
fn brackets_inside_strings_and_comments_do_not_count_as_nesting() {
    let noise = "{".repeat(1000);
    let q = format!("{{ a(s: \"{noise}\", t: \"\"\"{noise}\"\"\") # {noise}\n }}");
    assert_eq!(op(&q).depth, 1);
}

#[test]
fn a_long_chain_of_fragments_is_refused_not_overflowing_the_stack() {
    let mut q = String::from("{ ...F0 }");
    for i in 0..5_000 {
        q.push_str(&format!(" fragment F{i} on Q {{ ...F{} }}", i + 1));
    }
    q.push_str(" fragment F5000 on Q { a }");
    assert_eq!(
        analyse(&q, None, None).unwrap_err().code,
        "NESTING_LIMIT_EXCEEDED"
    );
}

#[test]
fn json_get_and_graphql_bodies_are_all_understood() {
    let body = r#"{"query":"query Q { a }","operationName":"Q","variables":{"x":1}}"#;
    let one = post_json(body).unwrap();
    assert!(!one.batched);
    assert_eq!(one.requests[0].operation_name.as_deref(), Some("Q"));
    let get = extract(Transport::Get {
        query_string: "query=query+Q%7Ba%7D&operationName=Q&variables=%7B%22x%22%3A1%7D",
    })
    .unwrap();
    assert_eq!(get.requests[0].query.as_deref(), Some("query Q{a}"));
    assert_eq!(get.requests[0].variables.as_ref().map(|v| v.len()), Some(1));
    let text = extract(Transport::Post {
        content_type: Some("application/graphql"),
        query_string: Some("operationName=Q"),
        body: b"query Q { a }",
    })
    .unwrap();
    assert_eq!(text.requests[0].query.as_deref(), Some("query Q { a }"));
    assert_eq!(text.requests[0].operation_name.as_deref(), Some("Q"));
}

#[test]
fn malformed_requests_are_refused_as_such() {
    for body in [
        "{",
        "[]",
        "3",
        r#"{"query": 1}"#,
        r#"{"query":"{a}","variables":[1]}"#,
    ] {
        let e = post_json(body).unwrap_err();
        assert_eq!(
            (e.kind, e.status(true)),
            (RejectKind::Malformed, 400),
            "{body}"
        );
    }
    let e = extract(Transport::Post {
        content_type: Some("text/plain"),
        query_string: None,
        body: b"{a}",
    })
    .unwrap_err();
    assert_eq!(e.status(false), 415);
    let repeated = extract(Transport::Get {
        query_string: "query=a&query=b",
    });
    assert_eq!(repeated.unwrap_err().kind, RejectKind::Malformed);
    let bad_escape = extract(Transport::Get {
        query_string: "query=%+1",
    });
    assert_eq!(bad_escape.unwrap_err().kind, RejectKind::Malformed);
    let none = judge(&Limits::default(), r#"{"operationName":"x"}"#).unwrap_err();
    assert_eq!(none.kind, RejectKind::Malformed);
}

#[test]
fn a_mutation_over_get_is_refused_with_405() {
    let get = extract(Transport::Get {
        query_string: "query=mutation%7Ba%7D",
    })
    .unwrap();
    let e = inspect(&Limits::default(), &get, true).unwrap_err();
    assert_eq!(e.status(false), 405);
}

#[test]
fn batches_over_max_batch_are_refused() {
    let limits = Limits {
        max_batch: Some(2),
        ..Limits::default()
    };
    let two = r#"[{"query":"{a}"},{"query":"{b}"}]"#;
    assert_eq!(judge(&limits, two).unwrap().len(), 2);
    let three = r#"[{"query":"{a}"},{"query":"{b}"},{"query":"{c}"}]"#;
    assert_eq!(
        judge(&limits, three).unwrap_err().code,
        "BATCH_LIMIT_EXCEEDED"
    );
}

#[test]
fn batched_operations_that_each_pass_are_refused_when_their_sum_does_not() {
    let limits = Limits {
        max_aliases: Some(3),
        max_complexity: Some(9),
        max_root_fields: Some(100),
        ..Limits::default()
    };
    let each = r#"{"query":"{ x: a y: a }"}"#;
    assert!(judge(&limits, each).is_ok());
    let batch = format!("[{each},{each}]");
    assert_eq!(
        judge(&limits, &batch).unwrap_err().code,
        "ALIAS_LIMIT_EXCEEDED"
    );
    let heavy = r#"{"query":"{ a(first: 2) { b c } }"}"#;
    assert!(judge(&limits, heavy).is_ok());
    let two = format!("[{heavy},{heavy}]");
    assert_eq!(
        judge(&limits, &two).unwrap_err().code,
        "COMPLEXITY_LIMIT_EXCEEDED"
    );
}

#[test]
fn depth_root_fields_and_introspection_limits_refuse_with_their_codes() {
    let limits = Limits {
        max_depth: Some(2),
        max_root_fields: Some(2),
        introspection: false,
        ..Limits::default()
    };
    let cases = [
        (r#"{"query":"{ a { b { c } } }"}"#, "DEPTH_LIMIT_EXCEEDED"),
        (r#"{"query":"{ a b c }"}"#, "ROOT_FIELD_LIMIT_EXCEEDED"),
        (
            r#"{"query":"{ t: __type(name: \"Q\") { name } }"}"#,
            "INTROSPECTION_DISABLED",
        ),
        (r#"{"query":"{ a { "}"#, "GRAPHQL_PARSE_FAILED"),
    ];
    for (body, code) in cases {
        let e = judge(&limits, body).unwrap_err();
        assert_eq!(e.code, code, "{body}");
        assert_eq!((e.status(true), e.status(false)), (400, 200));
    }
    assert!(judge(&limits, r#"{"query":"{ a { __typename } b }"}"#).is_ok());
}

#[test]
fn only_allow_listed_documents_run_when_an_allow_list_is_set() {
    let allowed_text = "{ a }";
    let limits = Limits {
        persisted_queries: Some(HashSet::from([sha256_hex(allowed_text)])),
        ..Limits::default()
    };
    assert!(judge(&limits, r#"{"query":"{ a }"}"#).is_ok());
    let other = judge(&limits, r#"{"query":"{ b }"}"#).unwrap_err();
    assert_eq!(other.code, "PERSISTED_QUERY_NOT_ALLOWED");
    let by_hash = format!(
        r#"{{"extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{}"}}}}}}"#,
        sha256_hex(allowed_text).to_uppercase()
    );
    assert_eq!(judge(&limits, &by_hash).unwrap()[0].kind(), None);
    let lying = format!(
        r#"{{"query":"{{ b }}","extensions":{{"persistedQuery":{{"sha256Hash":"{}"}}}}}}"#,
        sha256_hex(allowed_text)
    );
    assert_eq!(
        judge(&limits, &lying).unwrap_err().code,
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
    let unlisted = judge(&Limits::default(), &by_hash).unwrap_err();
    assert_eq!(unlisted.code, "PERSISTED_QUERY_NOT_FOUND");
}

#[test]
fn the_error_response_is_a_graphql_errors_array() {
    let e = Rejection::refused("DEPTH_LIMIT_EXCEEDED", "too deep");
    let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(v["errors"][0]["message"], "too deep");
    assert_eq!(v["errors"][0]["extensions"]["code"], "DEPTH_LIMIT_EXCEEDED");
    assert!(accepts_graphql_response_json(
        "application/json;q=0.9, application/graphql-response+json"
    ));
    assert!(!accepts_graphql_response_json("application/json"));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_analysis(text in ".{0,400}") {
        let _ = analyse(&text, None, None);
    }

    #[test]
    fn graphql_shaped_text_never_panics_the_analysis(
        text in "[{}()\\[\\]a-c:.$!@\"#\n ]{0,300}|(query|fragment F on Q|\\.\\.\\.F|[{}a-c ])*"
    ) {
        let _ = analyse(&text, None, None);
        let _ = analyse(&text, Some("F"), None);
    }

    #[test]
    fn arbitrary_bodies_and_query_strings_never_panic_extraction(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        qs in "[a-zA-Z=&%+0-9{}\"]{0,100}",
    ) {
        for ct in ["application/json", "application/graphql"] {
            let t = Transport::Post {
                content_type: Some(ct),
                query_string: Some(&qs),
                body: &body,
            };
            if let Ok(ex) = extract(t) {
                let _ = inspect(&Limits::default(), &ex, false);
            }
        }
        let _ = extract(Transport::Get { query_string: &qs });
    }

    #[test]
    fn nesting_up_to_the_bound_parses_or_is_refused_but_never_overflows(depth in 1usize..200) {
        let q = format!("{}{}", "{a".repeat(depth), "}".repeat(depth));
        let result = analyse(&q, None, None);
        // The parser itself stops at 64 nested selection sets.
        match result {
            Ok(o) => prop_assert_eq!(o.depth, depth),
            Err(e) => prop_assert!(depth > 60, "{} deep refused: {:?}", depth, e),
        }
    }

    #[test]
    fn a_batch_passes_exactly_up_to_the_sum_of_its_aliases(
        counts in proptest::collection::vec(0usize..6, 1..6),
    ) {
        let items: Vec<String> = counts
            .iter()
            .map(|&n| {
                let fields: Vec<String> = (0..=n).map(|i| format!("a{i}: f")).collect();
                serde_json::json!({"query": format!("{{ x {} }}", fields.join(" "))}).to_string()
            })
            .collect();
        let body = format!("[{}]", items.join(","));
        let total: u64 = counts.iter().map(|&n| n as u64 + 1).sum();
        let at = Limits { max_aliases: Some(total), ..Limits::default() };
        prop_assert!(judge(&at, &body).is_ok());
        let under = Limits { max_aliases: Some(total - 1), ..Limits::default() };
        prop_assert_eq!(judge(&under, &body).unwrap_err().code, "ALIAS_LIMIT_EXCEEDED");
    }
}

#[test]
fn a_limit_of_zero_aliases_passes_plain_queries_and_refuses_any_alias() {
    let limits = Limits {
        max_aliases: Some(0),
        ..Limits::default()
    };
    assert!(judge(&limits, r#"{"query":"{ a { b } }"}"#).is_ok());
    assert_eq!(
        judge(&limits, r#"{"query":"{ x: a }"}"#).unwrap_err().code,
        "ALIAS_LIMIT_EXCEEDED"
    );
}

#[test]
fn graphql_parameters_in_both_the_url_and_the_body_are_refused_as_ambiguous() {
    let post = |content_type: &'static str, query_string: &'static str, body: &'static str| {
        extract(Transport::Post {
            content_type: Some(content_type),
            query_string: Some(query_string),
            body: body.as_bytes(),
        })
    };
    let json = r#"{"query":"{ me }"}"#;
    for qs in [
        "query=%7B__schema%7Btypes%7Bname%7D%7D%7D",
        "operationName=A",
        "variables=%7B%7D",
        "extensions=%7B%7D",
    ] {
        let e = post("application/json", qs, json).unwrap_err();
        assert_eq!(e.kind, RejectKind::Malformed, "{qs}");
    }
    // Other parameters (a client's own tracing, say) are not GraphQL's.
    assert!(post("application/json", "trace=1&op=A", json).is_ok());
    let text = post("application/graphql", "query=%7Bx%7D", "{ me }").unwrap_err();
    assert_eq!(text.kind, RejectKind::Malformed);
}
