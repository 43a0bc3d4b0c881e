//! HTTP Basic authentication against argon2 password hashes.
//!
//! Verifying an argon2 hash is slow on purpose (tens of milliseconds and
//! about 19 MiB with the default parameters), so it runs on Tokio's blocking
//! pool, never on a proxy worker thread. Basic auth is meant for low-rate
//! internal callers; API keys and JWTs are the high-rate credentials.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use http::HeaderValue;

/// A username and password from an `Authorization: Basic` header.
pub struct BasicCredential {
    pub username: String,
    pub password: String,
}

/// Reads `Authorization: Basic <base64(user:password)>`. `None` when the
/// header uses another scheme; `Some(Err)` when it is Basic but malformed.
pub fn parse(value: &HeaderValue) -> Option<Result<BasicCredential, ()>> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let parsed = decoded.and_then(|pair| {
        let (user, pass) = pair.split_once(':')?;
        Some(BasicCredential {
            username: user.to_owned(),
            password: pass.to_owned(),
        })
    });
    Some(parsed.ok_or(()))
}

/// Checks that `text` is an argon2 PHC string this build can verify.
pub fn check_hash(text: &str) -> Result<(), String> {
    let hash = PasswordHash::new(text).map_err(|e| format!("not a PHC hash string ({e})"))?;
    match hash.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => return Err(format!("the hash uses {other:?}, not argon2")),
    }
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("the hash lacks its salt or its hash part".into());
    }
    argon2::Params::try_from(&hash).map_err(|e| format!("invalid argon2 parameters ({e})"))?;
    Ok(())
}

/// Usernames to their consumer and password hash.
#[derive(Debug, Default)]
pub struct BasicIndex {
    users: HashMap<String, (usize, Arc<str>)>,
    /// A real hash verified for an unknown username, so that its answer
    /// takes as long as a wrong password's.
    decoy: Option<Arc<str>>,
}

impl BasicIndex {
    pub fn insert(&mut self, username: &str, consumer: usize, hash: &str) {
        let hash: Arc<str> = Arc::from(hash);
        self.decoy.get_or_insert_with(|| Arc::clone(&hash));
        self.users.insert(username.to_owned(), (consumer, hash));
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The consumer whose username and password these are. Runs the
    /// argon2 verification on the blocking pool.
    pub async fn verify(&self, credential: BasicCredential) -> Option<usize> {
        let (consumer, hash) = match self.users.get(&credential.username) {
            Some((consumer, hash)) => (Some(*consumer), Arc::clone(hash)),
            None => (None, Arc::clone(self.decoy.as_ref()?)),
        };
        let password = credential.password;
        let matched = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        consumer.filter(|_| matched)
    }
}

/// Whether `password` matches the PHC string `hash`, with the parameters
/// written in the hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A new argon2id PHC string for `password`, with the crate's default
/// (OWASP-recommended) parameters and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// A hash with the smallest parameters, so the test is quick.
    fn cheap_hash(password: &str) -> String {
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn header(user_pass: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(user_pass);
        HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
    }

    #[test]
    fn a_basic_header_yields_username_and_password() {
        let cred = parse(&header("ops:pa:ss")).unwrap().unwrap();
        assert_eq!(cred.username, "ops");
        assert_eq!(cred.password, "pa:ss");
        assert!(parse(&HeaderValue::from_static("Bearer x")).is_none());
        assert!(parse(&HeaderValue::from_static("Basic !!!"))
            .unwrap()
            .is_err());
    }

    #[tokio::test]
    async fn the_right_password_names_the_consumer_and_a_wrong_one_does_not() {
        let mut index = BasicIndex::default();
        index.insert("ops", 3, &cheap_hash("s3cret"));
        let cred = |u: &str, p: &str| BasicCredential {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(index.verify(cred("ops", "s3cret")).await, Some(3));
        assert_eq!(index.verify(cred("ops", "wrong")).await, None);
        assert_eq!(index.verify(cred("nobody", "s3cret")).await, None);
    }

    #[test]
    fn hash_formats_other_than_argon2_phc_are_refused() {
        assert!(check_hash(&cheap_hash("x")).is_ok());
        assert!(check_hash("plaintext").unwrap_err().contains("not a PHC"));
        let bcrypt_like = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(check_hash(bcrypt_like).unwrap_err().contains("not argon2"));
    }

    #[test]
    fn hash_password_makes_an_argon2id_phc_string() {
        let hash = hash_password("pw").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(check_hash(&hash).is_ok());
    }
}
