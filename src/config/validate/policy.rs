//! Checks of every `policies` section (the file's and the routes'): size
//! caps that could never admit a request, header names, the inspection
//! window, and the CORS rules.

use http::HeaderName;

use super::upstreams::invalid_header_name;
use crate::config::load::Draft;
use crate::config::schema::{LimitsSpec, PoliciesSpec, ThreatSpec};
use crate::config::{index_path, ConfigError};
use crate::policy::cors::Cors;

/// The largest body threat protection inspects: Pingora keeps at most this
/// much of a body read before the upstream is chosen, to forward it after.
pub const MAX_INSPECT_BYTES: u64 = 64 * 1024;

pub(super) fn check(draft: &Draft, errors: &mut Vec<ConfigError>) {
    if let Some(policies) = &draft.policies {
        check_policies("policies", policies, errors);
    }
    for (i, route) in &draft.routes {
        let path = format!("{}.policies", index_path("routes", *i));
        check_policies(&path, &route.policies, errors);
    }
}

fn check_policies(path: &str, policies: &PoliciesSpec, errors: &mut Vec<ConfigError>) {
    if let Some(limits) = &policies.limits {
        check_limits(&format!("{path}.limits"), limits, errors);
    }
    if let Some(threat) = &policies.threat_protection {
        check_threat(&format!("{path}.threat_protection"), threat, errors);
    }
    if let Some(cors) = &policies.cors {
        if let Err(problems) = Cors::compile(cors) {
            for (key, message, fix) in problems {
                errors.push(ConfigError::new(format!("{path}.cors.{key}"), message, fix));
            }
        }
    }
}

fn check_limits(path: &str, limits: &LimitsSpec, errors: &mut Vec<ConfigError>) {
    let sizes = [
        ("max_uri_bytes", limits.max_uri_bytes.map(|s| s.0)),
        ("max_headers", limits.max_headers.map(|n| n as u64)),
        ("max_header_bytes", limits.max_header_bytes.map(|s| s.0)),
    ];
    for (key, value) in sizes {
        if value == Some(0) {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                "0 would refuse every request",
                "set a positive cap, or remove the key for the default",
            ));
        }
    }
}

fn check_threat(path: &str, threat: &ThreatSpec, errors: &mut Vec<ConfigError>) {
    for (i, name) in threat.headers.iter().enumerate() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(invalid_header_name(
                index_path(&format!("{path}.headers"), i),
                name,
            ));
        }
    }
    let limit = threat.body_limit.0;
    if limit == 0 || limit > MAX_INSPECT_BYTES {
        errors.push(ConfigError::new(
            format!("{path}.body_limit"),
            format!("{limit} bytes is outside 1 byte to 64KiB"),
            "set a size up to 64KiB; larger bodies follow `oversize_body`",
        ));
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
