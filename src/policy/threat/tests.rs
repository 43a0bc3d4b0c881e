use super::*;
use http::HeaderValue;

fn all_checks() -> ThreatSettings {
    ThreatSettings {
        sqli: true,
        xss: true,
        headers: vec![header::USER_AGENT, header::REFERER, header::COOKIE],
        body_limit: 64 * 1024,
    }
}

fn query(q: &str) -> Option<Finding> {
    inspect_target(&all_checks(), "/api/search", Some(q))
}

fn path(p: &str) -> Option<Finding> {
    inspect_target(&all_checks(), p, None)
}

fn json(body: &str) -> Option<Finding> {
    inspect_body(&all_checks(), BodyKind::Json, body.as_bytes())
}

fn form(body: &str) -> Option<Finding> {
    inspect_body(&all_checks(), BodyKind::Form, body.as_bytes())
}

fn headers(pairs: &[(HeaderName, &str)]) -> Option<Finding> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    inspect_headers(&all_checks(), &map)
}

fn sqli_at(location: Location, fingerprint: &str) -> Option<Finding> {
    Some(Finding {
        check: Check::Sqli,
        location,
        fingerprint: Some(fingerprint.to_owned()),
    })
}

fn xss_at(location: Location) -> Option<Finding> {
    Some(Finding {
        check: Check::Xss,
        location,
        fingerprint: None,
    })
}

fn q(name: &str) -> Location {
    Location::Query(name.to_owned())
}

fn body(field: &str) -> Location {
    Location::Body(field.to_owned())
}

#[test]
fn quote_or_one_equals_one_in_a_query_value_is_flagged_as_sqli() {
    assert_eq!(query("id=' OR 1=1--"), sqli_at(q("id"), "s&1c"));
}

#[test]
fn a_percent_encoded_sqli_in_a_query_value_is_decoded_and_flagged() {
    assert_eq!(query("id=%27%20OR%201%3D1--"), sqli_at(q("id"), "s&1c"));
}

#[test]
fn union_select_in_a_query_value_is_flagged_as_sqli() {
    let found = query("page=2&id=1+UNION+SELECT+password+FROM+users");
    assert_eq!(found, sqli_at(q("id"), "1UEnk"));
}

#[test]
fn sqli_in_a_query_parameter_name_is_flagged() {
    let found = query("%27+OR+1%3D1--=1");
    assert_eq!(found, sqli_at(q("' OR 1=1--"), "s&1c"));
}

#[test]
fn a_script_tag_in_a_query_value_is_flagged_as_xss() {
    let found = query("q=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(found, xss_at(q("q")));
}

#[test]
fn an_img_onerror_in_a_query_value_is_flagged_as_xss() {
    assert_eq!(query("q=<img src=x onerror=alert(1)>"), xss_at(q("q")));
    assert_eq!(
        query("q=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"),
        xss_at(q("q"))
    );
}

#[test]
fn a_bare_javascript_url_in_a_query_value_is_flagged_as_xss() {
    assert_eq!(query("next=javascript:alert(1)"), xss_at(q("next")));
    assert_eq!(
        query("next=javascript%3Aalert%28document.cookie%29"),
        xss_at(q("next"))
    );
    assert_eq!(query("next=+JaVaScRiPt:alert`1`"), xss_at(q("next")));
    assert_eq!(
        query("next=java%09script:location='//evil'"),
        xss_at(q("next"))
    );
    assert_eq!(query("next=vbscript:msgbox(1)"), xss_at(q("next")));
}

#[test]
fn a_javascript_url_inside_an_attribute_is_flagged_by_libinjection() {
    let found = query("bio=%22%3E%3Ca+href%3D%22javascript%3Aalert(1)%22%3Ex%3C%2Fa%3E");
    assert_eq!(found, xss_at(q("bio")));
}

#[test]
fn prose_that_starts_like_a_script_url_is_not_flagged() {
    assert_eq!(query("title=JavaScript%3A+The+Good+Parts"), None);
    assert_eq!(query("note=javascript+is+fun%3A+really"), None);
}

#[test]
fn sqli_in_an_encoded_path_segment_is_flagged() {
    assert_eq!(
        path("/users/%27%20OR%201%3D1--/profile"),
        sqli_at(Location::Path, "s&1c")
    );
    let found = path("/items/1%20UNION%20SELECT%20password%20FROM%20users");
    assert_eq!(found, sqli_at(Location::Path, "1UEnk"));
}

#[test]
fn xss_in_an_encoded_path_segment_is_flagged() {
    let found = path("/p/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert_eq!(found, xss_at(Location::Path));
    let found = path("/search/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(found, xss_at(Location::Path));
}

#[test]
fn a_plus_in_a_path_is_not_a_space() {
    // `+` is literal in a path, so this reads as one word, not SQL.
    assert_eq!(path("/files/1+UNION+SELECT+password+FROM+users"), None);
}

#[test]
fn the_path_is_judged_before_the_query() {
    let found = inspect_target(&all_checks(), "/a/%27%20OR%201%3D1--", Some("q=<script>"));
    assert_eq!(found.map(|f| f.location), Some(Location::Path));
}

#[test]
fn a_user_agent_with_sqli_is_flagged() {
    let found = headers(&[(header::USER_AGENT, "' OR 1=1--")]);
    assert_eq!(
        found,
        sqli_at(Location::Header("user-agent".into()), "s&1c")
    );
}

#[test]
fn an_encoded_script_in_a_referer_is_flagged() {
    let referer = "%3Cscript%3Ealert(1)%3C/script%3E";
    let found = headers(&[(header::REFERER, referer)]);
    assert_eq!(found, xss_at(Location::Header("referer".into())));
}

#[test]
fn a_payload_in_a_later_cookie_is_flagged() {
    let cookie = "session=abc123; theme=dark; pref=%27%20OR%201%3D1--";
    let found = headers(&[(header::COOKIE, cookie)]);
    assert_eq!(found, sqli_at(Location::Header("cookie".into()), "s&1c"));
}

#[test]
fn every_value_of_a_repeated_header_is_inspected() {
    let found = headers(&[
        (header::COOKIE, "a=1"),
        (header::COOKIE, "b=<script>alert(1)</script>"),
    ]);
    assert_eq!(found, xss_at(Location::Header("cookie".into())));
}

#[test]
fn headers_that_are_not_listed_are_not_inspected() {
    let found = headers(&[(header::ACCEPT_LANGUAGE, "' OR 1=1--")]);
    assert_eq!(found, None);
}

#[test]
fn ordinary_browser_headers_are_not_flagged() {
    let found = headers(&[
        (
            header::USER_AGENT,
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        ),
        (header::USER_AGENT, "curl/8.5.0"),
        (
            header::REFERER,
            "https://shop.example.com/search?q=it%27s+great&page=2",
        ),
        (
            header::COOKIE,
            "session=9f8e7d; cart=%5B%22SKU-1%22%5D; name=O%27Brien",
        ),
    ]);
    assert_eq!(found, None);
}

#[test]
fn union_select_in_a_form_field_is_flagged() {
    let found = form("name=Ann&comment=1+UNION+SELECT+password+FROM+users");
    assert_eq!(found, sqli_at(body("comment"), "1UEnk"));
}

#[test]
fn xss_in_a_form_field_name_is_flagged() {
    let found = form("%3Cscript%3Ealert(1)%3C%2Fscript%3E=1");
    assert_eq!(found, xss_at(body("<script>alert(1)</script>")));
}

#[test]
fn a_nested_json_string_is_flagged_with_its_pointer() {
    let found = json(r#"{"user":{"id":7,"name":"' OR 1=1--"}}"#);
    assert_eq!(found, sqli_at(body("/user/name"), "s&1c"));
}

#[test]
fn a_json_string_in_an_array_is_flagged_with_its_index() {
    let found = json(r#"{"items":[{"note":"ok"},{"note":"<img src=x onerror=alert(1)>"}]}"#);
    assert_eq!(found, xss_at(body("/items/1/note")));
}

#[test]
fn a_json_object_key_is_flagged() {
    let found = json(r#"{"filter":{"<script>alert(1)</script>":true}}"#);
    assert_eq!(found, xss_at(body("/filter/<script>alert(1)<~1script>")));
}

#[test]
fn json_unicode_escapes_are_decoded_before_judging() {
    let found = json(r#"{"q":"\u0027 OR 1=1--"}"#);
    assert_eq!(found, sqli_at(body("/q"), "s&1c"));
}

#[test]
fn a_top_level_json_string_is_judged() {
    assert_eq!(json(r#""<script>alert(1)</script>""#), xss_at(body("")));
}

#[test]
fn json_numbers_booleans_and_nulls_are_not_judged() {
    assert_eq!(
        json(r#"{"a":1,"b":-2.5e10,"c":true,"d":null,"e":[0,1]}"#),
        None
    );
}

#[test]
fn invalid_json_is_judged_whole_as_raw_text() {
    assert_eq!(json(r#"' OR 1=1-- {"#), sqli_at(body(""), "s&1c"));
    assert_eq!(
        json(r#"{"q": "<script>alert(1)</script>""#),
        xss_at(body(""))
    );
}

#[test]
fn hostile_json_nesting_neither_overflows_nor_hides_a_payload() {
    // Within serde_json's limit the walk finds the payload at depth 100.
    let deep = format!(
        "{}\"<script>alert(1)</script>\"{}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let found = json(&deep).unwrap();
    assert_eq!(found.location, body(&"/0".repeat(100)));
    // Past it the body is not JSON to serde_json and is judged as text.
    let deeper = format!("{}<script>alert(1)</script>", "[".repeat(60_000));
    assert_eq!(json(&deeper), xss_at(body("")));
    assert_eq!(json(&"{\"a\":".repeat(50_000)), None);
}

#[test]
fn only_the_first_body_limit_bytes_are_inspected() {
    let settings = ThreatSettings {
        body_limit: 8,
        ..all_checks()
    };
    let found = inspect_body(&settings, BodyKind::Form, b"a=ok&bb=' OR 1=1--");
    assert_eq!(found, None);
}

#[test]
fn other_bodies_are_never_inspected() {
    let found = inspect_body(&all_checks(), BodyKind::Other, b"' OR 1=1--");
    assert_eq!(found, None);
}

#[test]
fn a_disabled_check_does_not_fire() {
    let sqli_only = ThreatSettings {
        xss: false,
        ..all_checks()
    };
    let xss_only = ThreatSettings {
        sqli: false,
        ..all_checks()
    };
    let none = ThreatSettings {
        sqli: false,
        xss: false,
        ..all_checks()
    };
    let attack = Some("a=<script>alert(1)</script>&b=' OR 1=1--");
    assert_eq!(
        inspect_target(&sqli_only, "/", attack).map(|f| f.check),
        Some(Check::Sqli)
    );
    assert_eq!(
        inspect_target(&xss_only, "/", attack).map(|f| f.check),
        Some(Check::Xss)
    );
    assert_eq!(inspect_target(&none, "/", attack), None);
}

#[test]
fn invalid_utf8_is_judged_as_bytes() {
    assert_eq!(
        query("q=%FF%27%20OR%201%3D1--").map(|f| f.check),
        Some(Check::Sqli)
    );
    assert_eq!(
        path("/x/%FF%3Cscript%3E").map(|f| f.check),
        Some(Check::Xss)
    );
    let found = inspect_body(
        &all_checks(),
        BodyKind::Json,
        b"\xff<script>alert(1)</script>",
    );
    assert_eq!(found, xss_at(body("")));
}

#[test]
fn body_kind_reads_the_media_type_and_ignores_parameters_and_case() {
    assert_eq!(body_kind(Some("application/json")), BodyKind::Json);
    assert_eq!(
        body_kind(Some("Application/JSON; charset=utf-8")),
        BodyKind::Json
    );
    assert_eq!(body_kind(Some("application/vnd.api+json")), BodyKind::Json);
    assert_eq!(
        body_kind(Some("application/merge-patch+JSON")),
        BodyKind::Json
    );
    assert_eq!(
        body_kind(Some(" application/x-www-form-urlencoded ; charset=UTF-8")),
        BodyKind::Form
    );
    for other in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/+json",
    ] {
        assert_eq!(body_kind(Some(other)), BodyKind::Other, "{other}");
    }
    assert_eq!(body_kind(Some("text/json")), BodyKind::Other);
    assert_eq!(body_kind(Some("")), BodyKind::Other);
    assert_eq!(body_kind(None), BodyKind::Other);
}

#[test]
fn checks_are_named_for_logs() {
    assert_eq!(Check::Sqli.name(), "sqli");
    assert_eq!(Check::Xss.name(), "xss");
}

const SQL_AND_HTML_WORDS: &str = "UNION union SELECT OR AND XOR NOT DIV MOD LIKE SLEEP \
    BENCHMARK WAITFOR DELAY EXEC EXECUTE DROP INSERT DELETE UPDATE FROM WHERE HAVING ORDER \
    GROUP LIMIT NULL TRUE USER VERSION CHAR CONCAT ASCII IF CASE BETWEEN script onload \
    onerror style javascript";

/// The fast path in `is_inert` must only skip values libinjection would
/// pass anyway; this calls libinjection directly on alphanumeric values
/// built from SQL keywords and the number forms its tokenizer knows.
#[test]
fn alphanumeric_values_skipped_by_the_fast_path_are_ones_libinjection_never_flags() {
    let words = std::iter::once("").chain(SQL_AND_HTML_WORDS.split(' '));
    let prefixes = [
        "", "1", "0", "0b", "0b1", "0b12", "0x", "0x1F", "1e", "1E5", "1f", "1F", "1d", "12",
        "9e9", "0b2", "1e1", "0X0", "10",
    ];
    for prefix in prefixes {
        for word in words.clone() {
            let value = format!("{prefix}{word}");
            assert!(is_inert(value.as_bytes()), "{value}");
            assert!(sqli(value.as_bytes()).is_none(), "sqli {value}");
            assert!(!xss(value.as_bytes()), "xss {value}");
        }
    }
}

/// Deterministic noise (xorshift), so failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, pieces: &[&[u8]]) -> Vec<u8> {
        let len = self.next() % 48;
        let mut out = Vec::new();
        for _ in 0..len {
            let r = self.next();
            if r.is_multiple_of(4) {
                out.push((r >> 8) as u8);
            } else {
                out.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]);
            }
        }
        out
    }
}

/// Fragments the fuzzing below strings together, `|`-separated: quotes,
/// comments, escapes, tags, keywords, JSON punctuation and bad bytes.
const NOISE_PIECES: &[u8] = b"'|\"|`|<|>|/|=|&|#|--|/*|%|%2|%27|%FF|+|\\|@@|$$|0x|1| |\t|\0|\xff|\
    {|}|[|]|:|,|\"a\"|select|union|or|<script|on|javascript:|&#|;";

#[test]
fn arbitrary_bytes_in_every_location_never_panic() {
    let pieces: Vec<&[u8]> = NOISE_PIECES.split(|&b| b == b'|').collect();
    let settings = all_checks();
    let mut noise = Noise(0x2545_F491_4F6C_DD1D);
    for _ in 0..5_000 {
        let raw = noise.bytes(&pieces);
        let text = String::from_utf8_lossy(&raw);
        let _ = inspect_target(&settings, &text, Some(&text));
        let _ = inspect_body(&settings, BodyKind::Form, &raw);
        let _ = inspect_body(&settings, BodyKind::Json, &raw);
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            let mut map = HeaderMap::new();
            map.insert(header::COOKIE, value.clone());
            map.insert(header::USER_AGENT, value);
            let _ = inspect_headers(&settings, &map);
        }
    }
}

/// Portico's benign corpus: `TARGET<TAB>BODY` lines, as the file's
/// header describes.
const BENIGN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/benign_requests.txt"
));

/// The most false positives tolerated, in percent of the corpus.
const MAX_FALSE_POSITIVE_PERCENT: f64 = 2.0;

#[test]
fn ordinary_requests_are_rarely_flagged() {
    let settings = all_checks();
    let mut total = 0usize;
    let mut flagged = Vec::new();
    for (number, line) in BENIGN.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (target, json_body) = line.split_once('\t').expect("TARGET<TAB>BODY");
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        total += 1;
        let found = inspect_target(&settings, path, query).or_else(|| match json_body {
            "-" => None,
            body => inspect_body(&settings, BodyKind::Json, body.as_bytes()),
        });
        if let Some(finding) = found {
            flagged.push(format!("line {}: {finding:?}\n    {line}", number + 1));
        }
    }
    let percent = 100.0 * flagged.len() as f64 / total as f64;
    println!(
        "false positives: {} of {total} requests ({percent:.2}%)\n{}",
        flagged.len(),
        flagged.join("\n")
    );
    assert!(total >= 300, "the corpus has only {total} requests");
    assert!(
        percent < MAX_FALSE_POSITIVE_PERCENT,
        "{} of {total} benign requests flagged ({percent:.2}%):\n{}",
        flagged.len(),
        flagged.join("\n")
    );
}
