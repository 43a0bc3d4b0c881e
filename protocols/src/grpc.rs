//! gRPC over HTTP/2: message framing, status codes, `grpc-timeout`, and
//! gRPC-Web content types and trailer frames; the health-check messages are
//! in `health`, the streaming base64 of gRPC-Web-text in `web_text`.
//!
//! The gateway needs only the envelope of gRPC, never the service's own
//! messages: a status to answer its own failures with, a deadline to bound
//! the upstream call, the five-byte frame to put trailers into a gRPC-Web
//! body, and the two tiny `grpc.health.v1` messages for active checks, which
//! are encoded here by hand so that no protobuf toolchain is needed.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

mod health;
mod web_text;
pub use health::*;
pub use web_text::*;

/// The status codes of the gRPC protocol, with their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in wire order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The value written in `grpc-status`.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The code a `grpc-status` value names; `None` for anything else, which
    /// the spec asks clients to treat as UNKNOWN.
    pub fn from_value(value: u32) -> Option<Code> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
    }

    /// The name the spec gives the code, as logs and docs write it.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code for an HTTP status that a gateway produced, following the
    /// gRPC spec's HTTP-to-gRPC table and extending it where a status has an
    /// obvious gRPC meaning (413 and 429 mean the caller asked for too much,
    /// 504 that the deadline passed). The gateway refines this further where
    /// it knows the cause better than the status says.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            200..=299 => Code::Ok,
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            413 | 429 => Code::ResourceExhausted,
            414 | 431 => Code::InvalidArgument,
            502 | 503 => Code::Unavailable,
            500 => Code::Internal,
            _ => Code::Unknown,
        }
    }
}

/// Percent-encodes a `grpc-message` value: the spec allows only printable
/// ASCII other than `%` unescaped, and UTF-8 bytes are escaped one by one.
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

/// Decodes a `grpc-message` value. A `%` not followed by two hex digits is
/// kept as written, and bytes that are not UTF-8 become U+FFFD, as the spec
/// asks of receivers: a malformed message must not lose the status.
pub fn decode_message(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex_value(h).zip(hex_value(l)),
            _ => None,
        };
        match escaped {
            Some((h, l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Reads a `grpc-timeout` value: one to eight ASCII digits and a unit (`H`
/// hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
/// `n` nanoseconds). `None` for anything else; the caller then ignores the
/// header, as a value it cannot read sets no deadline.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    // Split on bytes: a multi-byte last character must fail the digit and
    // unit checks, not panic on a char boundary.
    let (digits, unit) = value.as_bytes().split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits always fit in a u64, and so does the largest product
    // below (99_999_999 hours in seconds).
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b"H" => Duration::from_secs(amount * 3600),
        b"M" => Duration::from_secs(amount * 60),
        b"S" => Duration::from_secs(amount),
        b"m" => Duration::from_millis(amount),
        b"u" => Duration::from_micros(amount),
        b"n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Whether a `content-type` is gRPC (`application/grpc` or
/// `application/grpc+proto`, `+json`, ...); parameters after `;` are ignored.
pub fn is_grpc_content_type(value: &str) -> bool {
    let mime = media_type(value);
    mime.eq_ignore_ascii_case("application/grpc")
        || starts_with_ignore_case(mime, "application/grpc+")
}

/// The gRPC-Web encoding a `content-type` asks for, if it is gRPC-Web.
pub fn web_encoding(value: &str) -> Option<WebEncoding> {
    let mime = media_type(value);
    let rest = strip_prefix_ignore_case(mime, "application/grpc-web")?;
    if let Some(rest) = strip_prefix_ignore_case(rest, "-text") {
        return (rest.is_empty() || rest.starts_with('+')).then_some(WebEncoding::Text);
    }
    (rest.is_empty() || rest.starts_with('+')).then_some(WebEncoding::Binary)
}

/// How a gRPC-Web body is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebEncoding {
    /// `application/grpc-web[+proto]`: the gRPC frames as they are.
    Binary,
    /// `application/grpc-web-text[+proto]`: the same frames in base64.
    Text,
}

impl WebEncoding {
    /// The gRPC content type an upstream gets for a gRPC-Web one, keeping
    /// the `+suffix` (`application/grpc-web-text+proto` becomes
    /// `application/grpc+proto`).
    pub fn upstream_content_type(self, web: &str) -> String {
        let mime = media_type(web);
        let prefix = match self {
            WebEncoding::Binary => "application/grpc-web".len(),
            WebEncoding::Text => "application/grpc-web-text".len(),
        };
        format!("application/grpc{}", mime.get(prefix..).unwrap_or(""))
    }

    /// The content type of the answer to the client.
    pub fn response_content_type(self) -> &'static str {
        match self {
            WebEncoding::Binary => "application/grpc-web+proto",
            WebEncoding::Text => "application/grpc-web-text+proto",
        }
    }
}

fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    strip_prefix_ignore_case(text, prefix).is_some()
}

/// The flag bit of a gRPC-Web frame that carries trailers instead of a message.
pub const TRAILER_FLAG: u8 = 0x80;

/// One length-prefixed frame: a flag byte, the big-endian length, the payload.
/// `None` when the payload is over 4 GiB, which the frame cannot describe.
pub fn frame(flags: u8, payload: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(len);
    out.put_slice(payload);
    Some(out.freeze())
}

/// The gRPC-Web frame that carries trailers in the body: `name:value` lines
/// ended by CRLF, names in lowercase.
pub fn trailer_frame<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Bytes {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        block.push(b':');
        block.extend_from_slice(value);
        block.extend_from_slice(b"\r\n");
    }
    // A header block is bounded by the h2 limits far below 4 GiB.
    frame(TRAILER_FLAG, &block).unwrap_or_default()
}

/// Why a length-prefixed message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the body ends inside a message frame")]
    Truncated,
    #[error("a message of {0} bytes is larger than allowed")]
    TooLarge(usize),
    #[error("the message is compressed, which this reader does not support")]
    Compressed,
}

/// Reads the first message of a gRPC body. `max` bounds the length read from
/// the prefix before anything is allocated or sliced.
pub fn first_message(body: &[u8], max: usize) -> Result<&[u8], FrameError> {
    let head = body.get(..5).ok_or(FrameError::Truncated)?;
    if head[0] & 1 != 0 {
        return Err(FrameError::Compressed);
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    body.get(5..5 + len).ok_or(FrameError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_have_the_wire_values_of_the_spec() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.value()), i);
            assert_eq!(Code::from_value(i as u32), Some(*code));
        }
        assert_eq!(Code::Unauthenticated.value(), 16);
        assert_eq!(Code::DeadlineExceeded.name(), "DEADLINE_EXCEEDED");
        assert_eq!(Code::from_value(17), None);
    }

    #[test]
    fn http_statuses_map_as_the_spec_table_says() {
        assert_eq!(Code::from_http_status(400), Code::InvalidArgument);
        assert_eq!(Code::from_http_status(401), Code::Unauthenticated);
        assert_eq!(Code::from_http_status(403), Code::PermissionDenied);
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        assert_eq!(Code::from_http_status(429), Code::ResourceExhausted);
        assert_eq!(Code::from_http_status(413), Code::ResourceExhausted);
        assert_eq!(Code::from_http_status(502), Code::Unavailable);
        assert_eq!(Code::from_http_status(503), Code::Unavailable);
        assert_eq!(Code::from_http_status(504), Code::DeadlineExceeded);
        assert_eq!(Code::from_http_status(500), Code::Internal);
        assert_eq!(Code::from_http_status(418), Code::Unknown);
    }

    #[test]
    fn messages_escape_percent_and_everything_outside_printable_ascii() {
        assert_eq!(encode_message("no route: 100%"), "no route: 100%25");
        assert_eq!(encode_message("a\r\nb"), "a%0D%0Ab");
        assert_eq!(encode_message("café"), "caf%C3%A9");
        assert_eq!(decode_message("caf%C3%A9 100%25"), "café 100%");
        assert_eq!(decode_message("50%z"), "50%z");
        assert_eq!(decode_message("%FF"), "\u{fffd}");
    }

    #[test]
    fn timeouts_follow_the_spec_grammar() {
        assert_eq!(parse_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(
            parse_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        let bad = [
            "",
            "S",
            "100",
            "123456789S",
            "1s",
            "-1S",
            "1.5S",
            " 1S",
            "1 S",
            "１S",
            "1é",
        ];
        for bad in bad {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types_are_told_apart() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto; charset=x"));
        assert!(is_grpc_content_type("Application/GRPC"));
        assert!(!is_grpc_content_type("application/grpc-web"));
        assert!(!is_grpc_content_type("application/grpcx"));
        assert!(!is_grpc_content_type("application/json"));
        assert_eq!(
            web_encoding("application/grpc-web"),
            Some(WebEncoding::Binary)
        );
        assert_eq!(
            web_encoding("application/grpc-web+proto"),
            Some(WebEncoding::Binary)
        );
        assert_eq!(
            web_encoding("application/grpc-web-text"),
            Some(WebEncoding::Text)
        );
        assert_eq!(
            web_encoding("application/grpc-web-text+proto"),
            Some(WebEncoding::Text)
        );
        assert_eq!(web_encoding("application/grpc-webx"), None);
        assert_eq!(web_encoding("application/grpc"), None);
        let text = WebEncoding::Text;
        assert_eq!(
            text.upstream_content_type("application/grpc-web-text+proto"),
            "application/grpc+proto"
        );
        let binary = WebEncoding::Binary;
        assert_eq!(
            binary.upstream_content_type("application/grpc-web"),
            "application/grpc"
        );
    }

    #[test]
    fn trailer_frames_carry_lowercase_lines_with_the_trailer_flag() {
        let f = trailer_frame([("Grpc-Status", &b"0"[..]), ("grpc-message", b"ok")]);
        let text = b"grpc-status:0\r\ngrpc-message:ok\r\n";
        assert_eq!(f[0], TRAILER_FLAG);
        assert_eq!(&f[1..5], &(text.len() as u32).to_be_bytes());
        assert_eq!(&f[5..], text);
    }

    #[test]
    fn first_message_checks_the_length_before_slicing() {
        let body = frame(0, b"hello").unwrap();
        assert_eq!(first_message(&body, 10), Ok(&b"hello"[..]));
        assert_eq!(first_message(&body, 4), Err(FrameError::TooLarge(5)));
        assert_eq!(first_message(&body[..7], 10), Err(FrameError::Truncated));
        assert_eq!(first_message(&body[..3], 10), Err(FrameError::Truncated));
        let compressed = frame(1, b"x").unwrap();
        assert_eq!(first_message(&compressed, 10), Err(FrameError::Compressed));
    }

    proptest! {
        #[test]
        fn encoded_messages_decode_to_themselves(message in ".*") {
            let encoded = encode_message(&message);
            prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode_message(&encoded), message);
        }

        #[test]
        fn no_input_panics_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_health_response(&bytes);
            let _ = first_message(&bytes, 16);
            let _ = Base64Decoder::new().push(&bytes);
            let _ = parse_timeout(&String::from_utf8_lossy(&bytes));
        }
    }
}
