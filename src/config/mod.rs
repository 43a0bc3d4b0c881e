//! Configuration: the YAML schema, loading and validation.
//!
//! A file goes through four steps, each in its own module: the text is parsed
//! into a YAML value, `${VAR}` references in string scalars are expanded
//! (`env`), each part is deserialized into the [`schema`] types on its own
//! (`load`), and the semantic checks run over what was read (`validate`).
//! Every step keeps going after a problem, so one run reports all problems of
//! a file, sorted in file order, each with its key path and a fix.

mod env;
mod load;
pub mod schema;
#[cfg(test)]
mod test_support;
mod validate;

use std::fmt;
use std::path::Path;

pub use schema::Config;

/// One problem in a config file.
///
/// `path` is the key path of the offending value, like `routes[2].match.path`
/// or `upstreams.users.timeouts.connect`, or `(file)` for problems of the
/// file as a whole (unreadable, not YAML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
    pub fix: String,
}

impl ConfigError {
    pub(crate) fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line: a control character quoted from the file (a key or a value
    /// holding a line break) is written escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = format!("{}: {}; fix: {}", self.path, self.message, self.fix);
        for c in line.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// All problems of one file, in file order. Never empty when returned by a loader.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads the file at `path` and loads it like [`load_str`].
///
/// An unreadable file is a single error with path `(file)`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            FILE,
            format!("cannot read {}: {e}", path.display()),
            "check that the file exists, is readable and is UTF-8 text",
        )])
    })?;
    load_str(&text)
}

/// Loads a config from YAML text, expanding `${VAR}` from the process environment.
///
/// Returns the validated config, with methods uppercased and hosts lowercased,
/// or every problem found. A variable that is set but not valid UTF-8 counts as
/// unset.
pub fn load_str(text: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, &|name| std::env::var(name).ok())
}

/// Like [`load_str`], with `env` answering for the environment.
pub fn load_str_with_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let (mut draft, mut errors) = load::read(text, env).map_err(ConfigErrors)?;
    errors.extend(validate::validate(&mut draft));
    if errors.is_empty() {
        return Ok(draft.into_config());
    }
    draft.order.sort(&mut errors);
    drop_followers_of_unset_variables(&mut errors);
    Err(ConfigErrors(errors))
}

/// An unset `${VAR}` leaves an empty value behind, which the later checks of
/// that key would report again in other words; only the first cause is kept.
fn drop_followers_of_unset_variables(errors: &mut Vec<ConfigError>) {
    let unset: Vec<String> = errors
        .iter()
        .filter(|e| e.message.starts_with("environment variable "))
        .map(|e| e.path.clone())
        .collect();
    errors.retain(|e| e.message.starts_with("environment variable ") || !unset.contains(&e.path));
}

/// The path of problems that belong to the file as a whole.
pub(crate) const FILE: &str = "(file)";

/// The path of `key` under `base`; keys that would read ambiguously are quoted.
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if plain {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if base.is_empty() {
        key
    } else {
        format!("{base}.{key}")
    }
}

/// The path of item `index` of the sequence at `base`.
pub(crate) fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::test_support::{errors_of, FULL};
    use super::*;

    #[test]
    fn a_full_config_loads_with_normalised_hosts_and_methods() {
        let config = load_str_with_env(FULL, &|_| None).expect("FULL is valid");
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.routes.len(), 3);
        let route = &config.routes[0];
        assert_eq!(route.matches.hosts, ["api.example.com", "*.example.org"]);
        assert_eq!(route.matches.methods, ["GET", "POST"]);
        assert_eq!(config.upstreams["users"].backends.len(), 2);
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn several_errors_are_reported_together_in_file_order() {
        let errors = errors_of(
            "version: 1
listeners:
  - address: nowhere
upstreams:
  users:
    backends: []
    timeouts: {connect: 0s}
routes:
  - id: a
    upstream: orders
  - id: a
    upstream: users
    match: {path: {prefix: api}}
logging: {level: 'portico=loud'}
",
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listeners[0].address",
                "upstreams.users.backends",
                "upstreams.users.timeouts.connect",
                "routes[0].upstream",
                "routes[1].id",
                "routes[1].match.path.prefix",
                "logging.level",
            ]
        );
    }

    #[test]
    fn errors_display_as_path_message_and_fix_one_per_line() {
        let errors = load_str_with_env(
            "version: 1
listeners: [{address: '127.0.0.1:80'}]
upstreams:
  billing: {backends: [{address: 'b:1'}]}
  users: {backends: [{address: 'u:1'}]}
routes:
  - {id: a, upstream: users}
  - {id: b, upstream: users}
  - {id: c, upstream: orders}
  - {id: d, upstream: shipping}
",
            &|_| None,
        )
        .expect_err("the routes name missing upstreams");
        assert_eq!(
            errors.to_string(),
            "routes[2].upstream: no upstream named \"orders\"; \
             fix: define upstreams.orders or point the route at one of: billing, users\n\
             routes[3].upstream: no upstream named \"shipping\"; \
             fix: define upstreams.shipping or point the route at one of: billing, users"
        );
    }

    #[test]
    fn a_value_with_a_line_break_is_reported_on_one_line() {
        let errors = errors_of(
            "version: 1\nlisteners: [{address: '127.0.0.1:80'}]\n\
             access_log: {target: \"off\\n\"}\n",
        );
        assert_eq!(errors.len(), 1);
        let line = errors[0].to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("access_log.target: unknown value `off\\n`"),
            "{line}"
        );
    }

    #[test]
    fn an_unreadable_file_is_one_error_about_the_file() {
        let errors =
            load_file(Path::new("/nonexistent/portico.yaml")).expect_err("the file does not exist");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].path, "(file)");
        assert!(errors.0[0]
            .message
            .contains("cannot read /nonexistent/portico.yaml"));
    }

    #[test]
    fn a_file_on_disk_loads_through_load_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("portico.yaml");
        std::fs::write(&file, FULL).expect("the temp file is writable");
        let config = load_file(&file).expect("FULL is valid");
        assert_eq!(config.version, 1);
    }

    #[test]
    fn load_str_expands_from_the_process_environment() {
        // PATH is set for any process that cargo starts.
        let expected = std::env::var("PATH").expect("PATH is set");
        let yaml = format!(
            "{}server: {{pid_file: '${{PATH}}'}}\n",
            test_support::MINIMAL
        );
        let config = load_str(&yaml).expect("PATH is set");
        assert_eq!(config.server.pid_file, expected);
    }

    #[test]
    fn keys_that_would_read_ambiguously_are_quoted_in_paths() {
        assert_eq!(key_path("upstreams", "users-v2"), "upstreams.users-v2");
        assert_eq!(key_path("upstreams", "api.v1"), "upstreams.\"api.v1\"");
        assert_eq!(key_path("", "routes"), "routes");
    }
}
