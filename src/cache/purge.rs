//! Purging: by URL (every stored variant of it) or by URL prefix, asked
//! through the admin listener or with a `PURGE` request from an address a
//! route allows.

use serde::Deserialize;

use super::store;

/// What one purge names. URLs are written as keys are: `scheme://host:port`
/// then the path and the sorted query, like `http://shop.example:80/items?a=1`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Removes this URL, with every `Vary` variant and keyed part.
    #[serde(default)]
    pub url: Option<String>,
    /// Removes every URL starting with this.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl PurgeRequest {
    /// Runs the purge; returns how many objects were removed, or what is
    /// wrong with the request.
    pub fn run(&self) -> Result<usize, &'static str> {
        match (&self.url, &self.prefix) {
            (Some(url), None) => Ok(purge_url(url)),
            (None, Some(prefix)) if prefix.contains("://") => Ok(store().purge_prefix(prefix)),
            (None, Some(_)) => Err("a prefix starts with scheme://host:port"),
            _ => Err("give exactly one of `url` and `prefix`"),
        }
    }
}

/// Removes `url` and the entries that add keyed parts to it.
pub fn purge_url(url: &str) -> usize {
    if url.contains('\n') {
        return 0;
    }
    store().purge_exact(url) + store().purge_prefix(&format!("{url}\n"))
}
