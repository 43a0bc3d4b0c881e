//! The compiled configuration snapshot and the pointer it lives behind.
//!
//! A [`Snapshot`] is immutable: the route table, the pools and the settings the
//! request pipeline reads. It sits behind an [`ArcSwap`]; each request loads it
//! once, in `new_ctx`, and keeps that `Arc` to its end, so a later swap (a
//! reload) never changes a request half-way through.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::Auth;
use crate::config::Config;
use crate::limit::traffic::Traffic;
use crate::policy::Policies;
use crate::proxy::compression::RouteCompression;
use crate::proxy::graphql::GraphqlRoute;
use crate::proxy::transform::RouteTransform;
use crate::router::Router;
use crate::tls::upstream::UpstreamTls;
use crate::tls::Listeners;
use crate::upstream::resolve::Resolved;
use crate::upstream::Pool;

/// The live snapshot, shared by the proxy, the admin listener and the checkers.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Everything a request needs from the configuration, compiled.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    /// Pools by name.
    pub pools: BTreeMap<String, Arc<Pool>>,
    /// The pool of each route, by the route's index in `router.routes()`.
    pub route_pools: Vec<Arc<Pool>>,
    /// Consumers, credentials, JWT providers and each route's policy.
    pub auth: Auth,
    /// IP filters, size limits, threat protection and CORS, per route.
    pub policies: Policies,
    /// Each listener's TLS, HSTS and HTTPS redirect.
    pub listeners: Listeners,
    /// Rate limits, in-flight caps and consumer tiers.
    pub traffic: Traffic,
    /// Each route's GraphQL limits and operation routing, by route index.
    pub graphql: Vec<Option<GraphqlRoute>>,
    /// Each route's response compression, by route index.
    pub compression: Vec<Option<RouteCompression>>,
    /// Each route's header, query and JSON body transformation, by index.
    pub transforms: Vec<Option<RouteTransform>>,
}

impl Snapshot {
    /// Compiles a validated config. Backend names must already be resolved.
    /// Errors are written like config errors, with the key path first.
    pub fn build(config: Config, resolved: &Resolved) -> Result<Snapshot, Vec<String>> {
        let mut errors = Vec::new();
        let mut pools: BTreeMap<String, Arc<Pool>> = BTreeMap::new();
        for (name, spec) in &config.upstreams {
            let tls = match &spec.tls {
                Some(tls) => match UpstreamTls::build(&format!("upstreams.{name}.tls"), tls) {
                    Ok(tls) => Some(Arc::new(tls)),
                    Err(problems) => {
                        errors.extend(problems);
                        None
                    }
                },
                None => None,
            };
            let pool = Pool::new(name, spec, resolved).with_tls(tls);
            pools.insert(name.clone(), Arc::new(pool));
        }
        let listeners = Listeners::build(&config.listeners);
        if let Err(problems) = &listeners {
            errors.extend(problems.iter().cloned());
        }
        let router = Router::new(&config.routes).map_err(|e| vec![format!("routes: {e}")])?;
        let mut route_pools = Vec::with_capacity(router.len());
        for route in router.routes() {
            match pools.get(&*route.upstream) {
                Some(p) => route_pools.push(Arc::clone(p)),
                None => errors.push(format!(
                    "routes[{}].upstream: no upstream named {:?}; fix: define it under upstreams",
                    route.index, route.upstream
                )),
            }
        }
        let auth = Auth::build(&config);
        if let Err(problems) = &auth {
            errors.extend(problems.iter().cloned());
        }
        let policies = Policies::build(&config);
        if let Err(problems) = &policies {
            errors.extend(problems.iter().cloned());
        }
        let traffic = Traffic::build(&config);
        if let Err(problems) = &traffic {
            errors.extend(problems.iter().cloned());
        }
        let graphql = GraphqlRoute::build_all(&config, &pools).unwrap_or_else(|problems| {
            errors.extend(problems);
            Vec::new()
        });
        let (auth, policies, listeners, traffic) = match (auth, policies, listeners, traffic) {
            (Ok(auth), Ok(policies), Ok(listeners), Ok(traffic)) if errors.is_empty() => {
                (auth, policies, listeners, traffic)
            }
            _ => return Err(errors),
        };
        let compression = (config.routes.iter())
            .map(|r| r.compression.as_ref().and_then(RouteCompression::build))
            .collect();
        let mut transforms = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let Some(spec) = &route.transform else {
                transforms.push(None);
                continue;
            };
            match RouteTransform::build(&format!("routes[{i}].transform"), spec) {
                Ok(t) => transforms.push(Some(t)),
                Err(problems) => return Err(problems.iter().map(|p| p.to_string()).collect()),
            }
        }
        Ok(Snapshot {
            transforms,
            compression,
            config,
            listeners,
            traffic,
            router,
            pools,
            route_pools,
            auth,
            policies,
            graphql,
        })
    }

    /// Whether `ip` is one of the configured trusted proxies.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }

    /// True once every pool has finished its first round of health checks.
    pub fn is_ready(&self) -> bool {
        self.pools.values().all(|p| p.is_checked())
    }
}
