//! API keys: how they are hashed in the config, how a presented key is found,
//! and where it is read from.
//!
//! API keys are long random strings, not passwords a person chose, so a
//! guess is hopeless whatever the hash speed: one fast SHA-256 over the key is
//! the standard choice, and the config only ever holds `sha256:<hex>`.
//!
//! Lookup is a hash map keyed on the SHA-256 digest of the presented key,
//! whose equality is [`subtle`]'s constant-time comparison. The map's probe
//! time depends on the digest, never on the stored keys' bytes in a way an
//! attacker could steer: choosing a digest means finding a SHA-256 preimage.
//! So the lookup costs one hash however many consumers there are, and no
//! comparison stops early on a matching prefix.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use http::HeaderName;
use pingora::http::RequestHeader;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of a stored key hash.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 digest of an API key; compared in constant time.
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of the presented key bytes.
    pub fn of(key: &[u8]) -> KeyDigest {
        KeyDigest(Sha256::digest(key).into())
    }

    /// Parses `sha256:<64 lowercase or uppercase hex digits>`.
    pub fn parse(text: &str) -> Result<KeyDigest, String> {
        let Some(hex) = text.strip_prefix(HASH_PREFIX) else {
            return Err(format!(
                "{:?} does not start with `{HASH_PREFIX}`",
                shorten(text)
            ));
        };
        if hex.len() != 64 {
            return Err(format!(
                "the hash has {} hex digits after `{HASH_PREFIX}`, not 64",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
                _ => return Err("the hash holds a character that is not a hex digit".into()),
            }
        }
        Ok(KeyDigest(out))
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for KeyDigest {}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// The line `portico hash-key` prints for `key`: `sha256:<64 hex digits>`.
pub fn hash_line(key: &[u8]) -> String {
    let digest = KeyDigest::of(key);
    let mut text = String::with_capacity(HASH_PREFIX.len() + 64);
    text.push_str(HASH_PREFIX);
    for byte in digest.0 {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The first characters of a value for an error message, so that a pasted
/// plain key is not echoed whole.
fn shorten(text: &str) -> String {
    let short: String = text.chars().take(8).collect();
    if short.len() < text.len() {
        format!("{short}...")
    } else {
        short
    }
}

/// Every configured key digest, to the index of its consumer.
#[derive(Debug, Default)]
pub struct KeyIndex(HashMap<KeyDigest, usize>);

impl KeyIndex {
    pub fn insert(&mut self, digest: KeyDigest, consumer: usize) {
        self.0.insert(digest, consumer);
    }

    /// The consumer whose key is `key`.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.0.get(&KeyDigest::of(key)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a request carries its API key.
#[derive(Debug)]
pub struct KeySource {
    pub header: HeaderName,
    pub query: Option<String>,
}

impl KeySource {
    /// The presented key, from the header first, then the query parameter
    /// (percent-decoded). An empty value counts as presented.
    pub fn extract(&self, req: &RequestHeader) -> Option<Vec<u8>> {
        if let Some(value) = req.headers.get(&self.header) {
            return Some(value.as_bytes().to_vec());
        }
        let name = self.query.as_deref()?;
        query_value(req.uri.query()?, name)
    }
}

/// The decoded value of the first `name` parameter in `query`.
pub(crate) fn query_value(query: &str, name: &str) -> Option<Vec<u8>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_encoding::percent_decode_str(key)
            .decode_utf8()
            .ok()?;
        (key == name).then(|| plus_decoded(value))
    })
}

fn plus_decoded(value: &str) -> Vec<u8> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

/// `query` without any `name` parameter; `None` when nothing was removed.
pub(crate) fn without_param(query: &str, name: &str) -> Option<String> {
    let mut removed = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let hit = percent_encoding::percent_decode_str(key)
                .decode_utf8()
                .is_ok_and(|k| k == name);
            removed |= hit;
            !hit
        })
        .collect();
    removed.then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_line_is_sha256_of_the_key_in_lowercase_hex() {
        // SHA-256 of "abc", FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_line(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_hash_line_parses_back_to_the_digest_of_its_key() {
        let parsed = KeyDigest::parse(&hash_line(b"k3y")).unwrap();
        assert_eq!(parsed, KeyDigest::of(b"k3y"));
        assert_ne!(parsed, KeyDigest::of(b"k3z"));
        let upper = hash_line(b"k3y")
            .to_uppercase()
            .replacen("SHA256:", "sha256:", 1);
        assert_eq!(KeyDigest::parse(&upper).unwrap(), parsed);
    }

    #[test]
    fn malformed_hashes_are_refused_with_the_reason() {
        let plain = KeyDigest::parse("my-secret-api-key").unwrap_err();
        assert!(plain.contains("does not start with `sha256:`"), "{plain}");
        assert!(!plain.contains("api-key"), "the key is echoed: {plain}");
        let short = KeyDigest::parse("sha256:abcd").unwrap_err();
        assert!(short.contains("4 hex digits"), "{short}");
        let bad = format!("sha256:{}", "z".repeat(64));
        assert!(KeyDigest::parse(&bad)
            .unwrap_err()
            .contains("not a hex digit"));
    }

    #[test]
    fn digests_compare_with_the_constant_time_equality() {
        // `KeyDigest`'s `==` is `subtle::ConstantTimeEq`; the map uses it.
        let a = KeyDigest::of(b"one");
        assert!(bool::from(a.0[..].ct_eq(&KeyDigest::of(b"one").0[..])));
        let mut index = KeyIndex::default();
        index.insert(a, 7);
        assert_eq!(index.find(b"one"), Some(7));
        assert_eq!(index.find(b"two"), None);
    }

    #[test]
    fn query_parameters_are_read_decoded_and_removed_by_name() {
        assert_eq!(
            query_value("a=1&api_key=k%2By+z", "api_key").unwrap(),
            b"k+y z"
        );
        assert_eq!(query_value("a=1", "api_key"), None);
        assert_eq!(
            without_param("a=1&api_key=x&b=2", "api_key").unwrap(),
            "a=1&b=2"
        );
        assert_eq!(without_param("api_key=x", "api_key").unwrap(), "");
        assert_eq!(without_param("a=1", "api_key"), None);
    }
}
