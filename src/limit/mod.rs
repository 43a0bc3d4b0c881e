//! Traffic control: rate limits kept in this process ([`window`]) or shared
//! between instances through Redis ([`redis`]), and concurrency limits
//! ([`concurrency`]). Circuit breaking belongs to the pools
//! (`upstream::circuit`).
//!
//! Every rate limit is a sliding window counter: windows of the policy's
//! length aligned on the Unix epoch, so that every instance agrees on them,
//! and a request is admitted when
//!
//! ```text
//! previous_count * (window - elapsed) / window + current_count + cost <= limit
//! ```
//!
//! where `elapsed` is the time since the current window began. The previous
//! window's count is weighted by the part of it that the sliding window still
//! covers, as if its requests had been spread evenly.

pub mod concurrency;
pub mod redis;
pub mod traffic;
pub mod window;

use std::time::Duration;

/// What one policy decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Requests the key may still make now, after this one (0 when refused).
    pub remaining: u64,
    /// How long until one more request would be admitted: `Retry-After` of a
    /// refusal, and the `t` of the `RateLimit` header.
    pub reset: Duration,
}
