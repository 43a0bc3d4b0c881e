//! WebSocket (RFC 6455): what a relaying gateway must understand of the
//! protocol to enforce limits on it without terminating it.
//!
//! The gateway passes frames through unchanged, so the parser here never
//! buffers a message or unmasks a payload: it is fed the relayed bytes in
//! whatever chunks the network delivers, and reports each frame's header and
//! the payload bytes that belong to it. A frame header is held back until it
//! is complete and valid, so a caller that forwards only what the parser
//! reports never forwards a frame it was about to refuse. Also here: the
//! handshake key checks and the few frames a gateway writes itself (close and
//! ping).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 section 1.3 appends to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// The only protocol version RFC 6455 defines.
pub const VERSION: &str = "13";

/// Whether a `Sec-WebSocket-Key` value is a base64 nonce of 16 bytes, as
/// RFC 6455 section 4.1 asks.
pub fn key_is_valid(key: &[u8]) -> bool {
    // 16 bytes encode to 24 characters; anything longer is not a nonce, and
    // checking first keeps the decode bounded.
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|k| k.len() == 16)
}

/// The `Sec-WebSocket-Accept` value that answers `key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    STANDARD.encode(sha.finalize())
}

/// A frame's opcode (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Which endpoint sends the bytes a parser reads; it decides the masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Client frames must be masked.
    Client,
    /// Server frames must not be masked.
    Server,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// Why a stream of frames is refused; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a client frame is not masked")]
    Unmasked,
    #[error("a server frame is masked")]
    Masked,
    #[error("reserved bits are set without a negotiated extension")]
    ReservedBits,
    #[error("opcode {0:#x} is reserved")]
    ReservedOpcode(u8),
    #[error("a control frame is longer than 125 bytes")]
    ControlTooLong,
    #[error("a control frame is fragmented")]
    ControlFragmented,
    #[error("a continuation frame arrived with no message to continue")]
    NothingToContinue,
    #[error("a new message started before the previous one ended")]
    MessageInterrupted,
    #[error("a frame length has its most significant bit set")]
    LengthOverflow,
    #[error("a message is larger than {limit} bytes")]
    MessageTooLarge { limit: u64 },
}

impl FrameError {
    /// The close code that ends the connection for this error (RFC 6455
    /// section 7.4.1): 1009 for a message too big, 1002 for the rest.
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::MessageTooLarge { .. } => CLOSE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

/// Close codes the gateway sends.
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What [`FrameParser::feed`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete, valid header; `raw` is its bytes as they came.
    Header { header: FrameHeader, raw: &'a [u8] },
    /// Payload bytes of the current frame, still masked when it is.
    Payload(&'a [u8]),
    /// The current frame's payload is complete. `message_end` is true when
    /// the frame finished a data message (a final text, binary or
    /// continuation frame).
    FrameEnd { opcode: Opcode, message_end: bool },
}

/// An incremental frame parser for one direction of a connection.
///
/// Memory is bounded by the largest header whatever the frame sizes: payload
/// is reported as slices of the input, never copied.
#[derive(Debug, Clone)]
pub struct FrameParser {
    sender: Sender,
    max_message: Option<u64>,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// The frame whose payload is being read, and the bytes it has left.
    current: Option<(FrameHeader, u64)>,
    /// Size of the data message so far, while one is open (its first frame
    /// was not final).
    open_message: Option<u64>,
    failed: Option<FrameError>,
}

impl FrameParser {
    /// A parser for frames sent by `sender`, refusing data messages larger
    /// than `max_message` bytes across all their fragments.
    pub fn new(sender: Sender, max_message: Option<u64>) -> FrameParser {
        FrameParser {
            sender,
            max_message,
            header: [0; MAX_HEADER],
            header_len: 0,
            current: None,
            open_message: None,
            failed: None,
        }
    }

    /// True when the bytes reported so far end between two frames (no
    /// payload is owed), so a frame of the gateway's own can be written
    /// after them. A header still incomplete does not count: its bytes have
    /// not been reported yet.
    pub fn at_frame_boundary(&self) -> bool {
        self.current.is_none()
    }

    /// Parses `input`, reporting what it holds to `sink` in order. After an
    /// error the parser stays failed: the stream cannot be resynchronised.
    /// Bytes of a header that is not complete yet are kept and reported with
    /// the header once the rest arrives.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut sink: impl FnMut(Event<'_>),
    ) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        loop {
            if let Some((header, left)) = self.current {
                let take = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                if take > 0 {
                    sink(Event::Payload(&input[..take]));
                    input = &input[take..];
                }
                let left = left - take as u64;
                if left > 0 {
                    self.current = Some((header, left));
                    return Ok(());
                }
                self.current = None;
                let message_end = header.fin && !header.opcode.is_control();
                sink(Event::FrameEnd {
                    opcode: header.opcode,
                    message_end,
                });
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            let used = self.take_header_bytes(input);
            input = &input[used..];
            let Some(needed) = header_size(&self.header[..self.header_len]) else {
                // Not even the length byte yet.
                continue;
            };
            if self.header_len < needed {
                continue;
            }
            match self.decode_header() {
                Ok(header) => {
                    sink(Event::Header {
                        header,
                        raw: &self.header[..self.header_len],
                    });
                    self.header_len = 0;
                    self.current = Some((header, header.payload_len));
                }
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            }
        }
    }

    /// Copies into the header buffer as many bytes as the header still needs
    /// (known once the length byte is in), returning how many it took.
    fn take_header_bytes(&mut self, input: &[u8]) -> usize {
        let want = header_size(&self.header[..self.header_len]).unwrap_or(2);
        let take = want.saturating_sub(self.header_len).min(input.len());
        self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
        self.header_len += take;
        take
    }

    /// Decodes and validates the complete header in the buffer, and moves the
    /// message accounting on.
    fn decode_header(&mut self) -> Result<FrameHeader, FrameError> {
        let h = &self.header[..self.header_len];
        let (b0, b1) = (h[0], h[1]);
        if b0 & 0x70 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        match (self.sender, masked) {
            (Sender::Client, false) => return Err(FrameError::Unmasked),
            (Sender::Server, true) => return Err(FrameError::Masked),
            _ => {}
        }
        let (payload_len, rest) = match b1 & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), &h[4..]),
            127 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(len), &h[10..])
            }
            n => (u64::from(n), &h[2..]),
        };
        if payload_len >> 63 != 0 {
            return Err(FrameError::LengthOverflow);
        }
        let mask = masked.then(|| [rest[0], rest[1], rest[2], rest[3]]);
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::ControlFragmented);
            }
            if payload_len > 125 {
                return Err(FrameError::ControlTooLong);
            }
        } else {
            self.account(opcode, fin, payload_len)?;
        }
        Ok(FrameHeader {
            fin,
            opcode,
            mask,
            payload_len,
        })
    }

    /// Tracks the open data message's size across its fragments.
    fn account(&mut self, opcode: Opcode, fin: bool, len: u64) -> Result<(), FrameError> {
        let so_far = match (opcode, self.open_message) {
            (Opcode::Continuation, Some(size)) => size,
            (Opcode::Continuation, None) => return Err(FrameError::NothingToContinue),
            (_, Some(_)) => return Err(FrameError::MessageInterrupted),
            (_, None) => 0,
        };
        let size = so_far.saturating_add(len);
        if let Some(limit) = self.max_message {
            if size > limit {
                return Err(FrameError::MessageTooLarge { limit });
            }
        }
        self.open_message = (!fin).then_some(size);
        Ok(())
    }
}

/// The full size of the header whose first bytes are `h`, once the length
/// byte is known.
fn header_size(h: &[u8]) -> Option<usize> {
    let b1 = *h.get(1)?;
    let extended = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// Writes a complete frame: `mask` is required for frames a client sends and
/// must be absent for frames a server sends.
pub fn encode_frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    out.push(0x80 | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame with `code` and `reason`; the reason is cut at a character
/// boundary so the control frame stays within 125 bytes.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    encode_frame(Opcode::Close, &payload, mask)
}

/// A ping frame carrying `payload` (at most 125 bytes are sent).
pub fn ping_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    encode_frame(Opcode::Ping, &payload[..payload.len().min(125)], mask)
}

#[cfg(test)]
#[path = "websocket_tests.rs"]
mod tests;
