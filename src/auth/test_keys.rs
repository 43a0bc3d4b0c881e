//! Keys and tokens made at test time, for the unit tests of this module.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random HMAC secret of 48 printable bytes.
pub fn secret() -> String {
    (0..48).map(|_| fastrand::alphanumeric()).collect()
}

/// An RSA key pair, made once per test process (1024 bits keeps an
/// unoptimised build's key generation short; the size is irrelevant here).
pub struct Rsa {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn rsa() -> &'static Rsa {
    static KEY: OnceLock<Rsa> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let mut rng = rsa::rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("RSA key generation");
        let public = private.to_public_key();
        Rsa {
            private_pem: private
                .to_pkcs8_pem(LineEnding::LF)
                .expect("PKCS#8 encoding")
                .to_string(),
            public_pem: public
                .to_public_key_pem(LineEnding::LF)
                .expect("SPKI encoding"),
        }
    })
}

/// An Ed25519 key pair from a random seed.
pub struct Ed {
    pub encoding: EncodingKey,
    /// The public key, base64url, as a JWK's `x`.
    pub x: String,
    pub public_pem: String,
}

pub fn ed() -> Ed {
    let seed: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    // PKCS#8 v1 and SubjectPublicKeyInfo wrappers of an Ed25519 key (RFC 8410).
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&public);
    Ed {
        encoding: EncodingKey::from_ed_der(&pkcs8),
        x: URL_SAFE_NO_PAD.encode(public),
        public_pem: format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(spki)
        ),
    }
}

/// A signed token.
pub fn sign(
    alg: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    claims: serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).expect("token encoding")
}

/// A token with a header written by hand and no valid signature, such as
/// `{"alg":"none"}`.
pub fn forged(header: &str, claims: serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
