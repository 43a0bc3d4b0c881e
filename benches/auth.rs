//! The authentication step as a request meets it: `Auth::admit` on a route
//! that takes one method, compiled from a real config. JWT verification per
//! algorithm (keys made at run time), and API-key lookup among 10 and
//! 100,000 consumers.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pingora::http::RequestHeader;
use portico::auth::Auth;

/// A signing key and the YAML `keys:` entry that verifies it.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    yaml: String,
}

fn pem_scalar(pem: &str) -> String {
    format!("\"{}\"", pem.trim_end().replace('\n', "\\n"))
}

fn signers() -> Vec<Signer> {
    let secret: String = (0..48).map(|_| fastrand::alphanumeric()).collect();
    let mut out = vec![Signer {
        alg: Algorithm::HS256,
        key: EncodingKey::from_secret(secret.as_bytes()),
        yaml: format!("{{alg: HS256, secret: {secret}}}"),
    }];
    {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
        let private_pem = private.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki");
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            out.push(Signer {
                alg,
                key: EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("rsa pem"),
                yaml: format!("{{alg: {alg:?}, pem: {}}}", pem_scalar(&public_pem)),
            });
        }
    }
    {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let private_pem = private.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        let public_pem = private
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki");
        out.push(Signer {
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("ec pem"),
            yaml: format!("{{alg: ES256, pem: {}}}", pem_scalar(&public_pem)),
        });
    }
    {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, EncodePublicKey};
        let private = ed25519_dalek::SigningKey::generate(&mut rsa::rand_core::OsRng);
        let private_pem = private.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        let public_pem = private
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki");
        out.push(Signer {
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("ed pem"),
            yaml: format!("{{alg: EdDSA, pem: {}}}", pem_scalar(&public_pem)),
        });
    }
    out
}

fn compile(top: &str, method: &str) -> Auth {
    let yaml = format!(
        "version: 1
listeners: [{{address: 127.0.0.1:1}}]
upstreams: {{u: {{backends: [{{address: 127.0.0.1:2}}]}}}}
{top}
routes: [{{id: r, upstream: u, auth: {{methods: ['{method}']}}}}]
"
    );
    let config = portico::config::load_str(&yaml).expect("bench config");
    Auth::build(&config).expect("bench auth")
}

fn request(header: &str, value: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    req.insert_header(header.to_owned(), value).expect("header");
    req
}

fn jwt_verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"sub": "bench", "exp": exp, "scope": "a b"});
    let mut group = c.benchmark_group("jwt_admit");
    for signer in signers() {
        let auth = compile(
            &format!("jwt_providers: {{p: {{keys: [{}]}}}}", signer.yaml),
            "jwt:p",
        );
        let token = encode(&Header::new(signer.alg), &claims, &signer.key).expect("token");
        let req = request("authorization", &format!("Bearer {token}"));
        let policy = auth.policy(0).expect("policy");
        group.bench_function(format!("{:?}", signer.alg), |b| {
            b.iter(|| {
                let admitted = runtime.block_on(auth.admit(policy, black_box(&req), None));
                assert!(matches!(admitted, Ok(Some(_))));
            })
        });
    }
    group.finish();
}

fn api_key_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("api_key_admit");
    for consumers in [10, 100_000] {
        let mut top = String::from("consumers:\n");
        for i in 0..consumers {
            let hash = portico::auth::api_key::hash_line(format!("key-{i}").as_bytes());
            top.push_str(&format!(
                "  - {{id: c{i}, credentials: {{api_keys: ['{hash}']}}}}\n"
            ));
        }
        let auth = compile(&top, "api_key");
        let policy = auth.policy(0).expect("policy");
        let hit = request("x-api-key", &format!("key-{}", consumers / 2));
        let miss = request("x-api-key", "no-such-key");
        group.bench_function(format!("hit_{consumers}"), |b| {
            b.iter(|| {
                let admitted = runtime.block_on(auth.admit(policy, black_box(&hit), None));
                assert!(matches!(admitted, Ok(Some(_))));
            })
        });
        group.bench_function(format!("miss_{consumers}"), |b| {
            b.iter(|| {
                let refused = runtime.block_on(auth.admit(policy, black_box(&miss), None));
                assert!(refused.is_err());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, jwt_verification, api_key_lookup);
criterion_main!(benches);
