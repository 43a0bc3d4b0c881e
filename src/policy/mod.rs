//! Per-route protection that runs before authentication: the IP filter, size
//! limits, threat protection (SQL injection and XSS) and CORS.
//!
//! [`Policies`] is compiled with the snapshot: every route gets its effective
//! [`RoutePolicies`] (the file's `policies` combined with the route's own, as
//! [`crate::config::schema::PoliciesSpec`] describes), and requests that
//! match no route get the file's alone. Nothing here is looked up by name on
//! the request path.

pub mod cors;
pub mod ip_filter;
pub mod limits;
pub mod threat;

use std::sync::Arc;

use crate::config::schema::{OversizeBody, PoliciesSpec, ThreatMode, ThreatSpec};
use crate::config::Config;
use cors::Cors;
use ip_filter::IpFilter;
use limits::Limits;
use threat::ThreatSettings;

/// The protection of one snapshot.
#[derive(Debug)]
pub struct Policies {
    /// For requests that match no route.
    unrouted: RoutePolicies,
    /// By route index.
    routes: Vec<RoutePolicies>,
}

/// What one route enforces.
#[derive(Debug, Clone)]
pub struct RoutePolicies {
    /// The file's filter, then the route's; a request must pass both.
    pub ip_filters: Vec<Arc<IpFilter>>,
    pub limits: Limits,
    pub threat: Option<Arc<Threat>>,
    pub cors: Option<Arc<Cors>>,
}

/// Compiled threat protection.
#[derive(Debug)]
pub struct Threat {
    pub settings: ThreatSettings,
    pub mode: ThreatMode,
    pub oversize: OversizeBody,
}

impl Policies {
    /// Compiles the policies of a validated config; validation has already
    /// refused every spec that would not compile.
    pub fn build(config: &Config) -> Result<Policies, Vec<String>> {
        let mut errors = Vec::new();
        let file = &config.policies;
        let file_ip = file.ip_filter.as_ref().map(|s| Arc::new(IpFilter::new(s)));
        let file_threat = file.threat_protection.as_ref().and_then(compile_threat);
        let file_cors = compile_cors("policies.cors", file, &mut errors);
        let unrouted = RoutePolicies {
            ip_filters: file_ip.iter().cloned().collect(),
            limits: Limits::merged(file.limits.as_ref(), None),
            threat: file_threat.clone(),
            cors: file_cors.clone(),
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let own = &route.policies;
            let mut ip_filters = unrouted.ip_filters.clone();
            ip_filters.extend(own.ip_filter.as_ref().map(|s| Arc::new(IpFilter::new(s))));
            let cors = match own.cors {
                Some(_) => compile_cors(&format!("routes[{i}].policies.cors"), own, &mut errors),
                None => file_cors.clone(),
            };
            routes.push(RoutePolicies {
                ip_filters,
                limits: Limits::merged(file.limits.as_ref(), own.limits.as_ref()),
                threat: match &own.threat_protection {
                    Some(spec) => compile_threat(spec),
                    None => file_threat.clone(),
                },
                cors,
            });
        }
        if errors.is_empty() {
            Ok(Policies { unrouted, routes })
        } else {
            Err(errors)
        }
    }

    /// The policies of the route at `route`, or of a request without one.
    #[inline]
    pub fn for_route(&self, route: Option<usize>) -> &RoutePolicies {
        route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unrouted)
    }
}

impl RoutePolicies {
    /// Whether every IP filter lets `client` in.
    #[inline]
    pub fn admits_ip(&self, client: Option<std::net::IpAddr>) -> bool {
        self.ip_filters.iter().all(|f| f.admits(client))
    }
}

/// `None` when both checks are off: how a route turns the file's off.
fn compile_threat(spec: &ThreatSpec) -> Option<Arc<Threat>> {
    if !spec.sqli && !spec.xss {
        return None;
    }
    Some(Arc::new(Threat {
        settings: ThreatSettings {
            sqli: spec.sqli,
            xss: spec.xss,
            headers: spec
                .headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            body_limit: usize::try_from(spec.body_limit.0).unwrap_or(usize::MAX),
        },
        mode: spec.mode,
        oversize: spec.oversize_body,
    }))
}

fn compile_cors(path: &str, spec: &PoliciesSpec, errors: &mut Vec<String>) -> Option<Arc<Cors>> {
    let cors = spec.cors.as_ref()?;
    match Cors::compile(cors) {
        Ok(compiled) => Some(Arc::new(compiled)),
        Err(problems) => {
            for (key, problem, fix) in problems {
                errors.push(format!("{path}.{key}: {problem}; fix: {fix}"));
            }
            None
        }
    }
}
