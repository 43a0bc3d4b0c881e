//! From text to typed parts: YAML parsing, env expansion, the top-level keys,
//! and deserializing each part on its own so that one bad route does not hide
//! the problems of the next.
//!
//! The result is a [`Draft`]: every part that deserialized, with its position in
//! the file, plus the errors of the parts that did not.

use std::collections::HashMap;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};
use serde_path_to_error::Segment;

use super::env::{expand_tree, key_text};
use super::schema::{
    AccessLogSpec, AdminSpec, CacheStoreSpec, Config, ConsumerSpec, GraphqlSpec, IdentitySpec,
    IntrospectionSpec, JwtProviderSpec, ListenerSpec, LoggingSpec, PoliciesSpec, RateLimitingSpec,
    RouteAuthSpec, RouteSpec, ServerSpec, TrustedProxy, UpstreamSpec,
};
use super::{index_path, key_path, ConfigError, FILE};

/// The top-level keys, in the order the fix of an unknown key lists them.
const TOP_LEVEL_KEYS: [&str; 17] = [
    "version",
    "server",
    "listeners",
    "admin",
    "trusted_proxies",
    "access_log",
    "logging",
    "upstreams",
    "routes",
    "identity",
    "consumers",
    "jwt_providers",
    "introspection",
    "auth",
    "policies",
    "rate_limiting",
    "cache",
];

/// The parts of a file that deserialized. Listeners and routes keep their index
/// in the file so that paths stay right when an earlier item failed.
pub(crate) struct Draft {
    /// `None` when the section failed to deserialize (and so has an error).
    pub server: Option<ServerSpec>,
    pub listeners: Vec<(usize, ListenerSpec)>,
    /// Listener items written in the file, including those that failed.
    pub listeners_written: usize,
    pub admin: Option<AdminSpec>,
    pub trusted_proxies: Vec<IpNet>,
    pub access_log: Option<AccessLogSpec>,
    pub logging: Option<LoggingSpec>,
    pub upstreams: Vec<(String, UpstreamSpec)>,
    /// Upstream names written in the file, including those that failed.
    pub upstream_names: Vec<String>,
    pub routes: Vec<(usize, RouteSpec)>,
    /// The `auth` of each route in `routes`, at the same position.
    pub route_auth: Vec<Option<RouteAuthSpec>>,
    /// The `graphql` of each route in `routes`, at the same position.
    pub route_graphql: Vec<Option<GraphqlSpec>>,
    pub identity: Option<IdentitySpec>,
    pub consumers: Vec<(usize, ConsumerSpec)>,
    pub jwt_providers: Vec<(String, JwtProviderSpec)>,
    /// Provider names written in the file, including those that failed.
    pub jwt_provider_names: Vec<String>,
    pub introspection: Vec<(String, IntrospectionSpec)>,
    /// Introspection endpoint names written in the file, including those
    /// that failed.
    pub introspection_names: Vec<String>,
    pub auth: Option<RouteAuthSpec>,
    pub policies: Option<PoliciesSpec>,
    pub rate_limiting: Option<RateLimitingSpec>,
    pub cache: Option<CacheStoreSpec>,
    pub order: FileOrder,
}

impl Draft {
    /// The finished config; only meaningful when no part failed.
    pub(crate) fn into_config(self) -> Config {
        Config {
            version: 1,
            server: self.server.unwrap_or_default(),
            listeners: self.listeners.into_iter().map(|(_, l)| l).collect(),
            admin: self.admin,
            trusted_proxies: self.trusted_proxies,
            access_log: self.access_log.unwrap_or_default(),
            logging: self.logging.unwrap_or_default(),
            upstreams: self.upstreams.into_iter().collect(),
            routes: self.routes.into_iter().map(|(_, r)| r).collect(),
            identity: self.identity.unwrap_or_default(),
            consumers: self.consumers.into_iter().map(|(_, c)| c).collect(),
            jwt_providers: self.jwt_providers.into_iter().collect(),
            introspection: self.introspection.into_iter().collect(),
            auth: self.auth,
            route_auth: self.route_auth,
            route_graphql: self.route_graphql,
            policies: self.policies.unwrap_or_default(),
            rate_limiting: self.rate_limiting.unwrap_or_default(),
            cache: self.cache.unwrap_or_default(),
        }
    }
}

/// Parses, expands and deserializes `text`.
///
/// `Err` holds a problem that leaves nothing to read further (not YAML, not a
/// map); `Ok` holds the draft and the problems found so far.
pub(crate) fn read(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Draft, Vec<ConfigError>), Vec<ConfigError>> {
    let mut value = parse(text)?;
    let order = FileOrder::of(&value);
    let mut errors = Vec::new();
    expand_tree(&mut value, "", env, &mut errors);
    let Value::Mapping(root) = value else {
        return Err(vec![ConfigError::new(
            FILE,
            format!("the file holds {}, not a map of settings", describe(&value)),
            "start the file with `version: 1` and a `listeners:` list",
        )]);
    };
    let draft = read_sections(root, order, &mut errors);
    Ok((draft, errors))
}

fn parse(text: &str) -> Result<Value, Vec<ConfigError>> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| {
        let fix = match e.location() {
            Some(at) => format!(
                "correct the YAML near line {} column {} (indentation, a missing colon \
                 or an unclosed quote or bracket)",
                at.line(),
                at.column()
            ),
            None => "keep one YAML document in the file".into(),
        };
        vec![ConfigError::new(FILE, format!("invalid YAML: {e}"), fix)]
    })?;
    value.apply_merge().map_err(|e| {
        vec![ConfigError::new(
            FILE,
            format!("invalid YAML merge key: {e}"),
            "merge (<<) only maps or lists of maps",
        )]
    })?;
    Ok(value)
}

fn read_sections(root: Mapping, order: FileOrder, errors: &mut Vec<ConfigError>) -> Draft {
    let mut draft = Draft {
        server: Some(ServerSpec::default()),
        listeners: Vec::new(),
        listeners_written: 0,
        admin: None,
        trusted_proxies: Vec::new(),
        access_log: Some(AccessLogSpec::default()),
        logging: Some(LoggingSpec::default()),
        upstreams: Vec::new(),
        upstream_names: Vec::new(),
        routes: Vec::new(),
        route_auth: Vec::new(),
        route_graphql: Vec::new(),
        identity: Some(IdentitySpec::default()),
        consumers: Vec::new(),
        jwt_providers: Vec::new(),
        jwt_provider_names: Vec::new(),
        introspection: Vec::new(),
        introspection_names: Vec::new(),
        auth: None,
        policies: None,
        rate_limiting: None,
        cache: None,
        order,
    };
    let mut version_seen = false;
    for (key, value) in root {
        let key = key_text(&key);
        // An empty section (`server:` with everything commented out) means the defaults.
        if value.is_null() && key != "version" && TOP_LEVEL_KEYS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "version" => {
                version_seen = true;
                check_version(&value, errors);
            }
            "server" => draft.server = part(value, "server", errors),
            "listeners" => read_listeners(value, &mut draft, errors),
            "admin" => draft.admin = part(value, "admin", errors),
            "trusted_proxies" => read_trusted_proxies(value, &mut draft, errors),
            "access_log" => draft.access_log = part(value, "access_log", errors),
            "logging" => draft.logging = part(value, "logging", errors),
            "upstreams" => read_upstreams(value, &mut draft, errors),
            "routes" => read_routes(value, &mut draft, errors),
            "identity" => draft.identity = part(value, "identity", errors),
            "consumers" => read_consumers(value, &mut draft, errors),
            "jwt_providers" => read_jwt_providers(value, &mut draft, errors),
            "introspection" => read_introspection(value, &mut draft, errors),
            "auth" => draft.auth = part(value, "auth", errors),
            "policies" => draft.policies = part(value, "policies", errors),
            "rate_limiting" => draft.rate_limiting = part(value, "rate_limiting", errors),
            "cache" => draft.cache = part(value, "cache", errors),
            _ => errors.push(ConfigError::new(
                key_path("", &key),
                format!("unknown top-level key `{key}`"),
                format!("use one of: {}", TOP_LEVEL_KEYS.join(", ")),
            )),
        }
    }
    if !version_seen {
        errors.push(ConfigError::new(
            "version",
            "missing `version`",
            "add `version: 1` at the top of the file",
        ));
    }
    draft
}

fn check_version(value: &Value, errors: &mut Vec<ConfigError>) {
    if value.as_u64() == Some(1) {
        return;
    }
    let message = match value {
        Value::Number(n) => format!("unsupported version {n}"),
        other => format!("version must be the number 1, not {}", describe(other)),
    };
    errors.push(ConfigError::new(
        "version",
        message,
        "set `version: 1`, the only version there is",
    ));
}

fn read_listeners(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let Some(items) = sequence(value, "listeners", "- address: 0.0.0.0:8080", errors) else {
        // Something was written; "no listener is defined" would only repeat the error.
        draft.listeners_written = 1;
        return;
    };
    draft.listeners_written = items.len();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(listener) = part(item, &index_path("listeners", i), errors) {
            draft.listeners.push((i, listener));
        }
    }
}

fn read_trusted_proxies(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let Some(items) = sequence(value, "trusted_proxies", "- 10.0.0.0/8", errors) else {
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let path = index_path("trusted_proxies", i);
        if let Some(TrustedProxy(net)) = part(item, &path, errors) {
            draft.trusted_proxies.push(net);
        }
    }
}

fn read_upstreams(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let Value::Mapping(map) = value else {
        errors.push(ConfigError::new(
            "upstreams",
            format!(
                "expected a map of named upstreams, found {}",
                describe(&value)
            ),
            "write each upstream as `name: {backends: [...]}` under `upstreams:`",
        ));
        return;
    };
    for (key, spec) in map {
        let name = key_text(&key);
        let path = key_path("upstreams", &name);
        draft.upstream_names.push(name.clone());
        if let Some(upstream) = part(spec, &path, errors) {
            draft.upstreams.push((name, upstream));
        }
    }
}

fn read_routes(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let example = "- {id: users, upstream: users}";
    let Some(items) = sequence(value, "routes", example, errors) else {
        return;
    };
    for (i, mut item) in items.into_iter().enumerate() {
        let path = index_path("routes", i);
        // `auth` and `graphql` are read on their own, so a route's shape
        // stays `RouteSpec`.
        let mut own = |key: &str| match &mut item {
            Value::Mapping(map) => map.remove(key).filter(|value| !value.is_null()),
            _ => None,
        };
        let (auth, graphql) = (own("auth"), own("graphql"));
        let auth = auth.and_then(|value| part(value, &format!("{path}.auth"), errors));
        let graphql = graphql.and_then(|value| part(value, &format!("{path}.graphql"), errors));
        if let Some(route) = part(item, &path, errors) {
            draft.routes.push((i, route));
            draft.route_auth.push(auth);
            draft.route_graphql.push(graphql);
        }
    }
}

fn read_consumers(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let example = "- {id: mobile-app, credentials: {api_keys: [sha256:...]}}";
    let Some(items) = sequence(value, "consumers", example, errors) else {
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        if let Some(consumer) = part(item, &index_path("consumers", i), errors) {
            draft.consumers.push((i, consumer));
        }
    }
}

fn read_introspection(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let Value::Mapping(map) = value else {
        errors.push(ConfigError::new(
            "introspection",
            format!(
                "expected a map of named endpoints, found {}",
                describe(&value)
            ),
            "write each as `name: {url: ..., client_id: ..., client_secret: ...}`",
        ));
        return;
    };
    for (key, spec) in map {
        let name = key_text(&key);
        let path = key_path("introspection", &name);
        draft.introspection_names.push(name.clone());
        if let Some(endpoint) = part(spec, &path, errors) {
            draft.introspection.push((name, endpoint));
        }
    }
}

fn read_jwt_providers(value: Value, draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let Value::Mapping(map) = value else {
        errors.push(ConfigError::new(
            "jwt_providers",
            format!(
                "expected a map of named providers, found {}",
                describe(&value)
            ),
            "write each provider as `name: {issuer: ..., keys: [...]}` under `jwt_providers:`",
        ));
        return;
    };
    for (key, spec) in map {
        let name = key_text(&key);
        let path = key_path("jwt_providers", &name);
        draft.jwt_provider_names.push(name.clone());
        if let Some(provider) = part(spec, &path, errors) {
            draft.jwt_providers.push((name, provider));
        }
    }
}

/// The items of a list section, or an error when it is not a list.
fn sequence(
    value: Value,
    path: &str,
    example: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<Value>> {
    match value {
        Value::Sequence(items) => Some(items),
        other => {
            errors.push(ConfigError::new(
                path,
                format!("expected a list, found {}", describe(&other)),
                format!("write `{path}` as a YAML list, like `{example}`"),
            ));
            None
        }
    }
}

/// Deserializes one part, turning each failure into an error at its exact path.
///
/// Serde stops at the first problem of a part, so the offending key is taken
/// out and the part read again until it reads. An error that only follows
/// from a key taken out (a required key, or a check of the map that held it)
/// is not reported; that map is taken out in turn. The reading ends when a
/// problem cannot be taken out as a map key: a list item, or the part itself.
/// A part with any problem is `None`.
fn part<T: DeserializeOwned>(
    mut value: Value,
    base: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut removed: Vec<Vec<Segment>> = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize(&value) {
            Ok(typed) => return removed.is_empty().then_some(typed),
            Err(e) => e,
        };
        let at: Vec<Segment> = e.path().iter().cloned().collect();
        let raw = e.inner().to_string();
        if !follows_from_removal(&raw, &at, &removed) {
            let inner = e.path().to_string();
            let path = match inner.as_str() {
                "." => base.to_owned(),
                _ if inner.starts_with('[') => format!("{base}{inner}"),
                _ => format!("{base}.{inner}"),
            };
            let (message, fix) = explain(&raw);
            errors.push(ConfigError::new(path, message, fix));
        }
        if !remove_key(&mut value, &at) {
            return None;
        }
        removed.push(at);
    }
}

/// Whether the error `raw` at `at` only follows from keys taken out below `at`:
/// it says a key taken out is missing, or it is a check of a map that lost a key.
fn follows_from_removal(raw: &str, at: &[Segment], removed: &[Vec<Segment>]) -> bool {
    let below =
        |r: &&Vec<Segment>| r.len() > at.len() && r.iter().zip(at).all(|(a, b)| same_segment(a, b));
    let missing = raw
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'));
    match missing {
        Some(field) => removed.iter().filter(below).any(|r| {
            r.len() == at.len() + 1
                && matches!(r.last(), Some(Segment::Map { key }) if key == field)
        }),
        None => removed.iter().any(|r| below(&r)),
    }
}

fn same_segment(a: &Segment, b: &Segment) -> bool {
    match (a, b) {
        (Segment::Seq { index: x }, Segment::Seq { index: y }) => x == y,
        (Segment::Map { key: x }, Segment::Map { key: y }) => x == y,
        (Segment::Enum { variant: x }, Segment::Enum { variant: y }) => x == y,
        _ => false,
    }
}

/// Takes the map entry at `at` out of `value`. Only a map key is taken out:
/// removing a list item would shift the paths of the items after it.
fn remove_key(value: &mut Value, at: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = at.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Mapping(map)) => match map.get_mut(key.as_str()) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Seq { index }, Value::Sequence(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Mapping(map) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// Splits a deserializer message into a readable message and a fix.
fn explain(raw: &str) -> (String, String) {
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (key, accepted) = split_expected(rest);
        let fix = match accepted {
            Some(keys) => format!("remove it or use one of the accepted keys: {keys}"),
            None => "remove it; this map takes no keys".into(),
        };
        return (format!("unknown key {key}"), fix);
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let (value, accepted) = split_expected(rest);
        let fix = format!("use one of: {}", accepted.unwrap_or_default());
        return (format!("unknown value {value}"), fix);
    }
    if let Some(key) = raw.strip_prefix("missing field ") {
        return (format!("missing required key {key}"), format!("add {key}"));
    }
    if raw.starts_with("invalid type: ") || raw.starts_with("invalid value: ") {
        if let Some((_, expected)) = raw.rsplit_once(", expected ") {
            return (raw.to_owned(), format!("write {} here", plain(expected)));
        }
    }
    if let Some((message, fix)) = raw.rsplit_once("; ") {
        return (message.to_owned(), fix.to_owned());
    }
    (raw.to_owned(), "correct this value".into())
}

/// Splits "`x`, expected one of `a`, `b`" into "`x`" and "a, b".
fn split_expected(rest: &str) -> (&str, Option<String>) {
    let Some((subject, expected)) = rest.split_once(", expected ") else {
        // serde says "there are no fields" / "there are no variants" here.
        return (rest.split(',').next().unwrap_or(rest), None);
    };
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let names: Vec<&str> = expected
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|name| name.trim_matches('`'))
        .collect();
    (subject, Some(names.join(", ")))
}

/// Serde's name for an expected type, in words a config author knows.
fn plain(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let max = match expected {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        _ if expected.starts_with("struct ") => "a map of settings".into(),
        _ if expected.contains("Value::Tagged enum") => "one of the accepted names".into(),
        _ => expected.to_owned(),
    }
}

/// A short description of a YAML value for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the bool {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// Where each key path first appears in the file, to sort errors in file order.
pub(crate) struct FileOrder(HashMap<String, usize>);

impl FileOrder {
    fn of(root: &Value) -> Self {
        let mut order = HashMap::new();
        record(root, String::new(), &mut order);
        FileOrder(order)
    }

    /// The position of `path`, or of its nearest ancestor written in the file.
    pub(crate) fn position(&self, path: &str) -> usize {
        let mut path = path;
        loop {
            if let Some(&at) = self.0.get(path) {
                return at;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return 0,
            }
        }
    }

    /// Sorts `errors` by position; errors at one position keep their order.
    pub(crate) fn sort(&self, errors: &mut [ConfigError]) {
        errors.sort_by_cached_key(|e| self.position(&e.path));
    }
}

fn record(value: &Value, path: String, order: &mut HashMap<String, usize>) {
    let next = order.len();
    order.entry(path.clone()).or_insert(next);
    match value {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                record(item, index_path(&path, i), order);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                record(item, key_path(&path, &key_text(key)), order);
            }
        }
        Value::Tagged(tagged) => record(&tagged.value, path, order),
        _ => {}
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
