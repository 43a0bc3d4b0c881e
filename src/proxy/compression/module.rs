//! The downstream module that compresses answers: Pingora's
//! `ResponseCompressionCtx`, plus the end of a brotli stream.
//!
//! Pingora's brotli encoder flushes at the end of the body but never closes
//! the stream, so its output lacks the final (`ISLAST`) meta-block and
//! strict decoders reject it. After a flush the stream is byte-aligned, and
//! the one byte `0x03` (`ISLAST` and `ISLASTEMPTY` set) is a valid last,
//! empty meta-block; it is appended when the body ends.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::protocols::http::compression::ResponseCompressionCtx;
use pingora::Result;

/// The last, empty brotli meta-block, byte-aligned.
pub(super) const BROTLI_END: u8 = 0x03;

/// Per-request compression state; switched off until the route's settings
/// turn it on for one answer.
pub struct Compressor {
    pub(super) ctx: ResponseCompressionCtx,
    /// The chosen coding is brotli and its stream still needs closing.
    pub(super) brotli_open: bool,
    /// The encoder has seen the end of the body.
    ended: bool,
}

impl Compressor {
    /// The end of the body: the encoder's last bytes, and the brotli end.
    fn finish(&mut self, last: Option<Bytes>) -> Option<Bytes> {
        if !std::mem::take(&mut self.brotli_open) || !self.ctx.is_enabled() {
            return last;
        }
        let mut out = BytesMut::from(last.unwrap_or_default().as_ref());
        out.extend_from_slice(&[BROTLI_END]);
        Some(out.freeze())
    }
}

#[async_trait]
impl HttpModule for Compressor {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    /// The client's `Accept-Encoding` is read by the route's negotiation,
    /// not here.
    async fn request_header_filter(&mut self, _req: &mut RequestHeader) -> Result<()> {
        Ok(())
    }

    async fn response_header_filter(&mut self, resp: &mut ResponseHeader, end: bool) -> Result<()> {
        self.ctx.response_header_filter(resp, end);
        Ok(())
    }

    fn response_body_filter(&mut self, body: &mut Option<Bytes>, end: bool) -> Result<()> {
        if !self.ctx.is_enabled() {
            return Ok(());
        }
        let mut out = self.ctx.response_body_filter(body.as_ref(), end);
        if end {
            self.ended = true;
            out = self.finish(out);
        }
        if out.is_some() {
            *body = out;
        }
        Ok(())
    }

    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        // Ended already in the body filter: nothing is left to write.
        if !self.ctx.is_enabled() || self.ended {
            return Ok(None);
        }
        self.ended = true;
        let out = self.ctx.response_body_filter(None, true);
        Ok(self.finish(out))
    }
}

/// Builds a switched-off [`Compressor`] for each request.
pub struct CompressorBuilder;

impl HttpModuleBuilder for CompressorBuilder {
    fn init(&self) -> Module {
        Box::new(Compressor {
            ctx: ResponseCompressionCtx::new(0, false, false),
            brotli_open: false,
            ended: false,
        })
    }

    /// Late, like Pingora's own: the answer is compressed after every other
    /// module has changed it.
    fn order(&self) -> i16 {
        i16::MIN / 2
    }
}
