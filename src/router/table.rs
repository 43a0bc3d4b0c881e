//! The compiled route table and its lookup.
//!
//! Routes are indexed by host, then by path, so a lookup costs a few hash probes
//! per host label and per path segment rather than one test per route:
//!
//! - host buckets: exact names in a map; wildcard suffixes in a map probed with
//!   each label suffix of the request host, longest first; one any-host bucket;
//! - inside a bucket: exact paths in a map; prefixes in a map probed with the
//!   request path cut at each '/' boundary, longest first, then `/`; regex routes
//!   and routes without a path predicate in two lists.
//!
//! Every candidate list is sorted by predicate count (more first), then config
//! order. The lookup walks buckets and, inside each, index nodes in precedence
//! order, and returns the first candidate whose method, header and query
//! predicates hold, which is the most specific matching route.
//!
//! Regex routes are tested one by one: a lookup that reaches the regex list of a
//! bucket costs one regex test per regex route in it, so the number of regex
//! routes, not the number of routes, bounds that part of the cost. The same goes
//! for routes with neither a host nor a path predicate.

use std::collections::HashMap;

use super::error::{RouterError, RouterErrorKind};
use super::predicate::{HostPattern, PathPattern};
use super::route::Route;
use super::RequestView;
use crate::config::schema::RouteSpec;

/// The compiled, immutable route table; build a new one to change routes.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    exact_hosts: HashMap<Box<str>, PathIndex>,
    /// Keyed by the suffix after `*.`.
    wildcard_hosts: HashMap<Box<str>, PathIndex>,
    any_host: PathIndex,
}

/// The routes of one host bucket, indexed by path predicate. Lists hold indexes
/// into [`Router::routes`].
#[derive(Debug, Default)]
struct PathIndex {
    exact: HashMap<Box<str>, Vec<usize>>,
    prefix: HashMap<Box<str>, Vec<usize>>,
    regex: Vec<usize>,
    any: Vec<usize>,
}

impl Router {
    /// Compiles `routes` (a validated config's `routes`). Fails on the first route
    /// that cannot be compiled or whose id repeats an earlier one.
    pub fn new(routes: &[RouteSpec]) -> Result<Router, RouterError> {
        let routes = routes
            .iter()
            .enumerate()
            .map(|(index, spec)| Route::compile(index, spec))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique_ids(&routes)?;
        let mut router = Router::default();
        for route in &routes {
            router.insert(route);
        }
        let buckets = router
            .exact_hosts
            .values_mut()
            .chain(router.wildcard_hosts.values_mut());
        for bucket in buckets.chain(std::iter::once(&mut router.any_host)) {
            bucket.sort(&routes);
        }
        router.routes = routes;
        Ok(router)
    }

    /// The most specific route matching `req` (see the module documentation of
    /// [`router`](super) for the order), or `None`. `req.host` and `req.path`
    /// must already be normalised.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Route> {
        if let Some(found) = self
            .exact_hosts
            .get(req.host)
            .and_then(|b| b.find(&self.routes, req))
        {
            return Some(found);
        }
        if !self.wildcard_hosts.is_empty() {
            for suffix in wildcard_probes(req.host) {
                let bucket = self.wildcard_hosts.get(suffix);
                if let Some(found) = bucket.and_then(|b| b.find(&self.routes, req)) {
                    return Some(found);
                }
            }
        }
        self.any_host.find(&self.routes, req)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// All routes, in config order (`routes()[i].index == i`).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn insert(&mut self, route: &Route) {
        if route.hosts.is_empty() {
            self.any_host.insert(route);
        }
        for host in &route.hosts {
            let bucket = match host {
                HostPattern::Exact(name) => self.exact_hosts.entry(name.clone()),
                HostPattern::Wildcard(suffix) => self.wildcard_hosts.entry(suffix.clone()),
            };
            bucket.or_default().insert(route);
        }
    }
}

impl PathIndex {
    fn insert(&mut self, route: &Route) {
        let list = match &route.path {
            Some(PathPattern::Exact(path)) => self.exact.entry(path.clone()).or_default(),
            Some(PathPattern::Prefix(prefix)) => self.prefix.entry(prefix.clone()).or_default(),
            Some(PathPattern::Regex(_)) => &mut self.regex,
            None => &mut self.any,
        };
        list.push(route.index);
    }

    /// Orders every list by predicate count (more first), then config order, and
    /// drops repeats left by a route listing one host twice.
    fn sort(&mut self, routes: &[Route]) {
        let key = |&i: &usize| {
            (
                std::cmp::Reverse(routes.get(i).map(Route::predicate_count)),
                i,
            )
        };
        let lists = self.exact.values_mut().chain(self.prefix.values_mut());
        for list in lists.chain([&mut self.regex, &mut self.any]) {
            list.sort_by_key(key);
            list.dedup();
        }
    }

    fn find<'r>(&self, routes: &'r [Route], req: &RequestView<'_>) -> Option<&'r Route> {
        let first = |list: &[usize]| {
            list.iter()
                .filter_map(|&i| routes.get(i))
                .find(|route| route.unindexed_predicates_hold(req))
        };
        if let Some(found) = self.exact.get(req.path).and_then(|list| first(list)) {
            return Some(found);
        }
        if !self.prefix.is_empty() {
            for probe in prefix_probes(req.path) {
                if let Some(found) = self.prefix.get(probe).and_then(|list| first(list)) {
                    return Some(found);
                }
            }
        }
        let regex_match = self
            .regex
            .iter()
            .filter_map(|&i| routes.get(i))
            .find(|route| {
                route.path.as_ref().is_some_and(|p| p.matches(req.path))
                    && route.unindexed_predicates_hold(req)
            });
        regex_match.or_else(|| first(&self.any))
    }
}

/// The label suffixes a wildcard could be keyed by, longest first:
/// `a.b.example.com` gives `b.example.com`, `example.com`, `com`.
fn wildcard_probes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.')
        .filter(|&(i, _)| i > 0)
        .filter_map(move |(i, _)| host.get(i + 1..))
}

/// The prefixes that cover `path` on a segment boundary, longest first:
/// `/a/b` gives `/a/b`, `/a`, `/`.
fn prefix_probes(path: &str) -> impl Iterator<Item = &str> {
    let whole = (path.len() > 1).then_some(path);
    let cuts = path
        .rmatch_indices('/')
        .filter(|&(i, _)| i > 0)
        .filter_map(move |(i, _)| path.get(..i));
    whole.into_iter().chain(cuts).chain(std::iter::once("/"))
}

fn check_unique_ids(routes: &[Route]) -> Result<(), RouterError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(routes.len());
    for route in routes {
        if let Some(&first) = seen.get(&*route.id) {
            return Err(RouterError {
                index: route.index,
                id: route.id.to_string(),
                kind: RouterErrorKind::DuplicateId { first },
            });
        }
        seen.insert(&route.id, route.index);
    }
    Ok(())
}
