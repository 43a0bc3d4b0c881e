//! JWT verification keys, each bound to the algorithms it may verify.
//!
//! A key never verifies a token whose header names an algorithm outside its
//! list, and every algorithm of one key belongs to one family. That shuts
//! the classic confusions: `alg: none` (not an algorithm here at all), an
//! HMAC token "signed" with an RSA public key taken as the secret, or any
//! token whose `alg` is not the one its key was issued for.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Algorithm families: a key belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

/// Every accepted algorithm name, as written in a JWS header.
pub const ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The algorithm and family of a JWS name (case-sensitive, as in RFC 7518).
pub fn parse_alg(name: &str) -> Option<(Algorithm, Family)> {
    Some(match name {
        "HS256" => (Algorithm::HS256, Family::Hmac),
        "HS384" => (Algorithm::HS384, Family::Hmac),
        "HS512" => (Algorithm::HS512, Family::Hmac),
        "RS256" => (Algorithm::RS256, Family::Rsa),
        "RS384" => (Algorithm::RS384, Family::Rsa),
        "RS512" => (Algorithm::RS512, Family::Rsa),
        "PS256" => (Algorithm::PS256, Family::Rsa),
        "PS384" => (Algorithm::PS384, Family::Rsa),
        "PS512" => (Algorithm::PS512, Family::Rsa),
        "ES256" => (Algorithm::ES256, Family::Ec),
        "ES384" => (Algorithm::ES384, Family::Ec),
        "EdDSA" => (Algorithm::EdDSA, Family::Ed),
        _ => return None,
    })
}

/// The shortest HMAC secret accepted, in bytes (RFC 7518 section 3.2 asks
/// for at least the hash size; 32 bytes is HS256's).
pub const MIN_SECRET_LEN: usize = 32;

/// The checks every token of one provider must pass, shared by its keys.
#[derive(Debug, Clone)]
pub struct Checks {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    /// Allowed clock skew, in seconds.
    pub leeway: u64,
    /// Registered claims that must be present, beside `exp`.
    pub required_spec: Vec<String>,
}

/// A key with the algorithms it may verify and the validation made for them.
#[derive(Debug)]
pub struct BoundKey {
    pub kid: Option<String>,
    pub algs: Vec<Algorithm>,
    pub key: DecodingKey,
    pub validation: Validation,
}

impl BoundKey {
    /// Binds `key` to `algs`, which must not be empty.
    pub fn new(
        kid: Option<String>,
        algs: Vec<Algorithm>,
        key: DecodingKey,
        checks: &Checks,
    ) -> Self {
        let validation = validation(&algs, checks);
        BoundKey {
            kid,
            algs,
            key,
            validation,
        }
    }

    /// Whether this key may verify a token with header `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algs.contains(&alg)
    }
}

fn validation(algs: &[Algorithm], checks: &Checks) -> Validation {
    let first = algs.first().copied().unwrap_or(Algorithm::HS256);
    let mut v = Validation::new(first);
    v.algorithms = algs.to_vec();
    v.leeway = checks.leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    // A configured issuer or audience is also a required claim: a token
    // without `iss` or `aud` must not pass a check it cannot fail.
    let mut required = vec!["exp".to_owned()];
    required.extend(checks.required_spec.iter().cloned());
    if let Some(issuer) = &checks.issuer {
        v.set_issuer(&[issuer.as_str()]);
        required.push("iss".to_owned());
    }
    if checks.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(checks.audiences.as_slice());
        required.push("aud".to_owned());
    }
    v.set_required_spec_claims(required.as_slice());
    v
}

/// Why a configured key cannot be used: the key under the key spec that is
/// wrong, the problem and its fix.
#[derive(Debug)]
pub struct KeyProblem {
    pub key: &'static str,
    pub message: String,
    pub fix: String,
}

impl KeyProblem {
    fn new(key: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        KeyProblem {
            key,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// The key material of a key spec, before binding.
pub struct Material<'a> {
    pub secret: Option<&'a str>,
    pub pem: Option<&'a str>,
    pub pem_file: Option<&'a str>,
}

/// Parses a key's algorithm list: known names, one family. Every problem is
/// reported.
pub fn parse_algs(names: &[String]) -> Result<(Vec<Algorithm>, Family), Vec<KeyProblem>> {
    let mut problems = Vec::new();
    let mut algs = Vec::new();
    let mut families = Vec::new();
    for name in names {
        match parse_alg(name) {
            Some((alg, family)) => {
                algs.push(alg);
                families.push(family);
            }
            None => problems.push(KeyProblem::new(
                "alg",
                format!("unknown algorithm {name:?}"),
                format!("use one of: {}", ALGORITHMS.join(", ")),
            )),
        }
    }
    if names.is_empty() {
        problems.push(KeyProblem::new(
            "alg",
            "the key names no algorithm",
            "bind the key to its algorithm, like `alg: RS256`",
        ));
    }
    let family = families.first().copied();
    if families.iter().any(|f| Some(*f) != family) {
        problems.push(KeyProblem::new(
            "alg",
            "the algorithms belong to different families",
            "one key verifies one family (HS, RS/PS, ES or EdDSA); write a key per family",
        ));
    }
    match (family, problems.is_empty()) {
        (Some(family), true) => Ok((algs, family)),
        _ => Err(problems),
    }
}

/// Loads the key material for `family`: a secret for HMAC, a PEM public key
/// (inline or from a file) for the others.
pub fn load(family: Family, material: &Material<'_>) -> Result<DecodingKey, KeyProblem> {
    let given = [material.secret, material.pem, material.pem_file];
    if given.iter().filter(|m| m.is_some()).count() != 1 {
        return Err(KeyProblem::new(
            "secret",
            "a key needs exactly one of `secret`, `pem` or `pem_file`",
            "write `secret` for HS algorithms, `pem` or `pem_file` for the others",
        ));
    }
    if family == Family::Hmac {
        let Some(secret) = material.secret else {
            return Err(KeyProblem::new(
                "secret",
                "an HS key needs a `secret`, not a PEM key",
                "write the shared secret as `secret: ${JWT_SECRET}`",
            ));
        };
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyProblem::new(
                "secret",
                format!(
                    "the secret has {} bytes, fewer than the {MIN_SECRET_LEN} required",
                    secret.len()
                ),
                "use a random secret of at least 32 bytes, like `openssl rand -base64 48`",
            ));
        }
        return Ok(DecodingKey::from_secret(secret.as_bytes()));
    }
    if material.secret.is_some() {
        return Err(KeyProblem::new(
            "secret",
            "only HS algorithms take a `secret`",
            "give the public key as `pem` or `pem_file`",
        ));
    }
    let (key, text) = match (material.pem, material.pem_file) {
        (Some(pem), _) => ("pem", pem.to_owned()),
        (None, Some(path)) => ("pem_file", read_pem_file(path)?),
        (None, None) => {
            return Err(KeyProblem::new(
                "pem",
                "an asymmetric key needs `pem` or `pem_file`",
                "give the PEM public key inline as `pem` or in a file as `pem_file`",
            ))
        }
    };
    let parsed = match family {
        Family::Rsa => DecodingKey::from_rsa_pem(text.as_bytes()),
        Family::Ec => DecodingKey::from_ec_pem(text.as_bytes()),
        Family::Ed => DecodingKey::from_ed_pem(text.as_bytes()),
        Family::Hmac => Ok(DecodingKey::from_secret(text.as_bytes())),
    };
    parsed.map_err(|e| {
        KeyProblem::new(
            key,
            format!("not a {} public key in PEM form ({e})", family_name(family)),
            "give the PEM public key (-----BEGIN PUBLIC KEY-----) that matches the algorithm",
        )
    })
}

fn read_pem_file(path: &str) -> Result<String, KeyProblem> {
    std::fs::read_to_string(path).map_err(|e| {
        KeyProblem::new(
            "pem_file",
            format!("cannot read {path:?} ({e})"),
            "point pem_file at a readable file holding the PEM public key",
        )
    })
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Hmac => "HMAC",
        Family::Rsa => "RSA",
        Family::Ec => "EC",
        Family::Ed => "Ed25519",
    }
}
