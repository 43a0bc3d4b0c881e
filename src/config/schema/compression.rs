//! The `compression` settings of a route: which codings the gateway may
//! apply to the upstream's answers, and to which of them.
//!
//! A route without this section never compresses; the upstream's encoding
//! is passed through as it came.

use serde::Deserialize;

use super::Size;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSpec {
    /// Lets a route keep the section written but switched off.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The codings offered, in the gateway's order of preference; the client's
    /// `q` values decide first, this order breaks ties. Default zstd, br, gzip.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Coding>,
    /// One level for every coding; each coding's own default when absent
    /// (gzip 6, br 4, zstd 3), which trade ratio for CPU as nginx and
    /// Envoy users expect.
    #[serde(default)]
    pub level: Option<u32>,
    /// Answers whose `Content-Length` is below this are sent as they are:
    /// the coding's framing would eat the gain. Default 1KiB.
    #[serde(default = "default_min_size")]
    pub min_size: Size,
    /// Media types compressed: `type/subtype` or `type/*`, compared without
    /// parameters and case. Default: the text types of Envoy's compressor.
    #[serde(default = "default_content_types")]
    pub content_types: Vec<String>,
}

/// A content coding the gateway can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The levels the coding's encoder accepts.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Coding::Gzip => 1..=9,
            Coding::Br => 1..=11,
            Coding::Zstd => 1..=22,
        }
    }

    /// The level used when the route names none.
    pub fn default_level(self) -> u32 {
        match self {
            Coding::Gzip => 6,
            Coding::Br => 4,
            Coding::Zstd => 3,
        }
    }
}

fn enabled() -> bool {
    true
}

fn default_algorithms() -> Vec<Coding> {
    vec![Coding::Zstd, Coding::Br, Coding::Gzip]
}

fn default_min_size() -> Size {
    Size(1024)
}

fn default_content_types() -> Vec<String> {
    [
        "text/html",
        "text/plain",
        "text/css",
        "text/xml",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/xml",
        "application/xhtml+xml",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
