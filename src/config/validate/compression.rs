//! Checks of each route's `compression`: codings, level and media types.

use crate::config::schema::{CompressionSpec, RouteSpec};
use crate::config::{index_path, ConfigError};

/// Media type prefixes Pingora's encoder agrees to compress; a listed type
/// outside them would be accepted here and silently never compressed.
const COMPRESSIBLE: [&str; 7] = [
    "text/",
    "application/",
    "font/",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "binary/octet-stream",
];

pub(super) fn check(routes: &mut [(usize, RouteSpec)], errors: &mut Vec<ConfigError>) {
    for (i, route) in routes.iter_mut() {
        if let Some(spec) = &mut route.compression {
            let path = format!("{}.compression", index_path("routes", *i));
            check_route(&path, spec, errors);
        }
    }
}

fn check_route(path: &str, spec: &mut CompressionSpec, errors: &mut Vec<ConfigError>) {
    if spec.algorithms.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.algorithms"),
            "no coding is listed",
            "list one or more of gzip, br, zstd, or set enabled: false",
        ));
    }
    for (i, coding) in spec.algorithms.iter().enumerate() {
        if spec.algorithms[..i].contains(coding) {
            errors.push(ConfigError::new(
                format!("{path}.algorithms[{i}]"),
                format!("{} is listed twice", coding.token()),
                "list each coding once, in order of preference",
            ));
        }
        if let Some(level) = spec.level {
            let range = coding.levels();
            if !range.contains(&level) {
                errors.push(ConfigError::new(
                    format!("{path}.level"),
                    format!(
                        "level {level} is outside {}'s range {}-{}",
                        coding.token(),
                        range.start(),
                        range.end()
                    ),
                    "choose a level every listed coding accepts (gzip 1-9, br 1-11, zstd 1-22), \
                     or leave it out for each coding's default",
                ));
            }
        }
    }
    if spec.content_types.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.content_types"),
            "no media type is listed, so nothing would be compressed",
            "list types such as text/* and application/json, or set enabled: false",
        ));
    }
    for (i, media) in spec.content_types.iter_mut().enumerate() {
        *media = media.trim().to_ascii_lowercase();
        if let Some(problem) = media_problem(media) {
            errors.push(ConfigError::new(
                format!("{path}.content_types[{i}]"),
                format!("{media:?} {problem}"),
                "write type/subtype or type/*, of a text-like type \
                 (text/*, application/*, font/*, image/svg+xml)",
            ));
        }
    }
}

/// What is wrong with a listed media type, if anything.
fn media_problem(media: &str) -> Option<&'static str> {
    let Some((kind, sub)) = media.split_once('/') else {
        return Some("is not a media type");
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !(sub == "*" || token(sub)) {
        return Some("is not a media type");
    }
    // Pingora refuses any type naming zip, and compressing compressed
    // data only costs CPU.
    if media.contains("zip") || !COMPRESSIBLE.iter().any(|p| media.starts_with(p)) {
        return Some("is a type the gateway does not compress");
    }
    None
}

#[cfg(test)]
#[path = "compression_tests.rs"]
mod tests;
