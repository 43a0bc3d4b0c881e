use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::sign::CertifiedKey;

use super::*;
use crate::config::schema::{CertificateSpec, ClientAuthSpec, Dur, HstsSpec};

/// A self-signed certificate for `names`, written as `stem.pem` and
/// `stem.key` under `dir`; returns the two paths.
fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

fn spec(certs: Vec<(String, String, Vec<String>)>) -> ListenerTlsSpec {
    ListenerTlsSpec {
        certificates: certs
            .into_iter()
            .map(|(cert, key, names)| CertificateSpec { cert, key, names })
            .collect(),
        client_auth: None,
        hsts: None,
    }
}

/// A resolver over three distinct keys, so a pick can be told apart by
/// pointer: `a` for api.test (the default), `w` for *.apps.test, `e` for
/// exact.apps.test.
fn three_key_resolver(dir: &Path) -> (SniResolver, [Arc<CertifiedKey>; 3]) {
    let mut keys = Vec::new();
    for (stem, name) in [
        ("a", "api.test"),
        ("w", "*.apps.test"),
        ("e", "exact.apps.test"),
    ] {
        let (cert, key) = write_cert(dir, stem, &[name]);
        let (certified, _) = load_certified_key(stem, &cert, &key).unwrap();
        keys.push(certified);
    }
    let mut resolver = SniResolver::default();
    resolver.add(&["api.test".into()], keys[0].clone()).unwrap();
    resolver
        .add(&["*.apps.test".into()], keys[1].clone())
        .unwrap();
    resolver
        .add(&["exact.apps.test".into()], keys[2].clone())
        .unwrap();
    let keys: [Arc<CertifiedKey>; 3] = keys.try_into().unwrap();
    (resolver, keys)
}

#[test]
fn an_exact_name_wins_over_a_wildcard_and_a_wildcard_covers_one_label() {
    let dir = tempfile::tempdir().unwrap();
    let (resolver, [a, w, e]) = three_key_resolver(dir.path());
    let pick = |name: Option<&str>| resolver.pick(name).unwrap();
    assert!(Arc::ptr_eq(&pick(Some("exact.apps.test")), &e));
    assert!(Arc::ptr_eq(&pick(Some("x.apps.test")), &w));
    assert!(Arc::ptr_eq(&pick(Some("X.Apps.Test")), &w));
    assert!(Arc::ptr_eq(&pick(Some("api.test")), &a));
    // Not covered by the wildcard: the bare parent and two labels below it.
    assert!(Arc::ptr_eq(&pick(Some("apps.test")), &a));
    assert!(Arc::ptr_eq(&pick(Some("a.b.apps.test")), &a));
    assert!(Arc::ptr_eq(&pick(Some("unknown.example")), &a));
    assert!(Arc::ptr_eq(&pick(None), &a));
}

#[test]
fn a_certificate_without_names_answers_the_dns_names_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1) = write_cert(dir.path(), "one", &["one.test"]);
    let (c2, k2) = write_cert(dir.path(), "two", &["two.test", "*.two.test"]);
    let tls = ListenerTls::build(
        "listeners[0].tls",
        &spec(vec![(c1, k1, vec![]), (c2, k2, vec![])]),
    )
    .unwrap();
    let default = tls.resolver.pick(None).unwrap();
    let two = tls.resolver.pick(Some("two.test")).unwrap();
    assert!(!Arc::ptr_eq(&default, &two));
    assert!(Arc::ptr_eq(
        &two,
        &tls.resolver.pick(Some("a.two.test")).unwrap()
    ));
    assert!(Arc::ptr_eq(
        &default,
        &tls.resolver.pick(Some("one.test")).unwrap()
    ));
}

#[test]
fn a_missing_file_a_foreign_key_and_an_empty_list_are_reported_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, _k1) = write_cert(dir.path(), "one", &["one.test"]);
    let (_c2, k2) = write_cert(dir.path(), "two", &["two.test"]);
    let missing = dir.path().join("nope.pem").display().to_string();
    let errors = ListenerTls::build(
        "listeners[2].tls",
        &spec(vec![
            (missing.clone(), k2.clone(), vec![]),
            (c1.clone(), k2.clone(), vec![]),
        ]),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("listeners[2].tls.certificates[0].cert: cannot read"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("fix:"), "{}", errors[0]);
    assert!(
        errors[1].starts_with("listeners[2].tls.certificates[1]: the key in"),
        "{}",
        errors[1]
    );
    let errors = ListenerTls::build("listeners[0].tls", &spec(vec![])).unwrap_err();
    assert!(errors[0].starts_with("listeners[0].tls.certificates: no certificate"));
}

#[test]
fn a_server_name_with_spaces_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = write_cert(dir.path(), "one", &["one.test"]);
    let errors = ListenerTls::build(
        "listeners[0].tls",
        &spec(vec![(c, k, vec!["bad name".into()])]),
    )
    .unwrap_err();
    assert!(
        errors[0].starts_with("listeners[0].tls.certificates[0].names: \"bad name\""),
        "{}",
        errors[0]
    );
}

#[test]
fn a_client_ca_file_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = write_cert(dir.path(), "one", &["one.test"]);
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not pem at all\n").unwrap();
    let mut s = spec(vec![(c, k, vec![])]);
    s.client_auth = Some(ClientAuthSpec {
        ca: empty.display().to_string(),
        required: true,
    });
    let errors = ListenerTls::build("listeners[0].tls", &s).unwrap_err();
    assert!(
        errors[0].starts_with("listeners[0].tls.client_auth.ca:")
            && errors[0].contains("holds no certificate"),
        "{}",
        errors[0]
    );
}

#[test]
fn hsts_is_written_with_its_options() {
    let year = HstsSpec {
        max_age: Dur(std::time::Duration::from_secs(31_536_000)),
        include_subdomains: true,
        preload: true,
    };
    assert_eq!(
        hsts_value(&year),
        "max-age=31536000; includeSubDomains; preload"
    );
    let plain = HstsSpec {
        max_age: Dur(std::time::Duration::from_secs(60)),
        include_subdomains: false,
        preload: false,
    };
    assert_eq!(hsts_value(&plain), "max-age=60");
}

#[test]
fn client_certificate_names_are_the_common_name_then_the_alternative_names() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["orders.clients.test".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "orders");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params
        .subject_alt_names
        .push(SanType::Rfc822Name("ops@acme.test".try_into().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    let names = certificate_names(cert.der());
    let client = names.client;
    assert_eq!(client.common_name.as_deref(), Some("orders"));
    assert_eq!(
        client.names().collect::<Vec<_>>(),
        ["orders", "orders.clients.test", "ops@acme.test"]
    );
    assert!(client.subject.contains("CN=orders"), "{}", client.subject);
    assert_eq!(names.dns, ["orders.clients.test"]);
    // Bytes that are not a certificate give no names rather than a panic.
    assert_eq!(certificate_names(b"garbage").client, ClientCert::default());
}

#[test]
fn the_listener_of_a_connection_is_found_by_port_and_address() {
    let yaml = |addr: &str, redirect: bool| ListenerSpec {
        address: addr.into(),
        h2c: false,
        tls: None,
        proxy_protocol: false,
        https_redirect: redirect.then_some(crate::config::schema::HttpsRedirectSpec { port: 443 }),
    };
    let listeners =
        Listeners::build(&[yaml("0.0.0.0:8080", true), yaml("127.0.0.1:9090", false)]).unwrap();
    let found = |addr: &str| listeners.with_rules(Some(addr.parse().unwrap()));
    assert_eq!(found("10.1.2.3:8080").unwrap().redirect_port, Some(443));
    assert_eq!(found("127.0.0.1:9090").unwrap().redirect_port, None);
    assert!(found("127.0.0.2:9090").is_none());
    // Without HSTS or redirects anywhere no lookup is made.
    let plain = Listeners::build(&[yaml("127.0.0.1:9090", false)]).unwrap();
    assert!(plain
        .with_rules(Some("127.0.0.1:9090".parse().unwrap()))
        .is_none());
}

#[test]
fn a_tls_listener_cannot_also_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = write_cert(dir.path(), "one", &["one.test"]);
    let listener = ListenerSpec {
        address: "127.0.0.1:8443".into(),
        h2c: false,
        tls: Some(spec(vec![(c, k, vec![])])),
        proxy_protocol: false,
        https_redirect: Some(crate::config::schema::HttpsRedirectSpec { port: 443 }),
    };
    let errors = Listeners::build(&[listener]).unwrap_err();
    assert!(
        errors[0].starts_with("listeners[0].https_redirect:"),
        "{}",
        errors[0]
    );
}
