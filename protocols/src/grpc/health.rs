//! The two `grpc.health.v1` messages an active health check needs, encoded
//! and decoded by hand: a request naming the service, and the serving
//! status of the answer.

use bytes::Bytes;

use super::{first_message, frame, FrameError};

/// The body of a `grpc.health.v1.Health/Check` request for `service`
/// (empty asks about the server as a whole), framed and ready to send.
pub fn health_check_request(service: &str) -> Bytes {
    // HealthCheckRequest { string service = 1; }: the field is left out when
    // empty, as proto3 does.
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    // A service name is a config value of reasonable size.
    frame(0, &message).unwrap_or_default()
}

/// The serving status of a `HealthCheckResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    /// A value this reader does not know; never healthy.
    Other(u64),
}

/// Why a `HealthCheckResponse` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthDecodeError {
    #[error("malformed protobuf in the health response")]
    Malformed,
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Decodes the framed body of a `HealthCheckResponse { ServingStatus
/// status = 1; }`. Unknown fields are skipped as protobuf requires; a
/// missing status field is proto3's default, UNKNOWN.
pub fn decode_health_response(body: &[u8]) -> Result<ServingStatus, HealthDecodeError> {
    let mut message = first_message(body, 64 * 1024)?;
    let mut status = 0;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = take_varint(&mut message)?;
                if field == 1 {
                    status = value;
                }
            }
            1 => skip(&mut message, 8)?,
            2 => {
                let len = take_varint(&mut message)?;
                skip(&mut message, usize::try_from(len).map_err(|_| Malformed)?)?;
            }
            5 => skip(&mut message, 4)?,
            _ => return Err(HealthDecodeError::Malformed),
        }
    }
    Ok(match status {
        0 => ServingStatus::Unknown,
        1 => ServingStatus::Serving,
        2 => ServingStatus::NotServing,
        3 => ServingStatus::ServiceUnknown,
        other => ServingStatus::Other(other),
    })
}

use HealthDecodeError::Malformed;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, HealthDecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(Malformed)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn skip(input: &mut &[u8], n: usize) -> Result<(), HealthDecodeError> {
    *input = input.get(n..).ok_or(Malformed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_requests_encode_the_service_as_field_one() {
        assert_eq!(&health_check_request("")[..], &[0, 0, 0, 0, 0]);
        let body = health_check_request("pkg.Svc");
        assert_eq!(&body[..5], &[0, 0, 0, 0, 9]);
        assert_eq!(&body[5..7], &[0x0a, 7]);
        assert_eq!(&body[7..], b"pkg.Svc");
    }

    #[test]
    fn health_responses_decode_status_and_skip_unknown_fields() {
        let serving = frame(0, &[0x08, 0x01]).unwrap();
        assert_eq!(decode_health_response(&serving), Ok(ServingStatus::Serving));
        let not = frame(0, &[0x08, 0x02]).unwrap();
        assert_eq!(decode_health_response(&not), Ok(ServingStatus::NotServing));
        let empty = frame(0, &[]).unwrap();
        assert_eq!(decode_health_response(&empty), Ok(ServingStatus::Unknown));
        // field 2 (bytes "ab"), field 3 (fixed32), then status SERVING
        let extra = frame(0, &[0x12, 2, b'a', b'b', 0x1d, 1, 2, 3, 4, 0x08, 1]).unwrap();
        assert_eq!(decode_health_response(&extra), Ok(ServingStatus::Serving));
        let cut = frame(0, &[0x12, 9, b'a']).unwrap();
        assert_eq!(decode_health_response(&cut), Err(Malformed));
        let bad_varint = frame(0, &[0x08, 0xff]).unwrap();
        assert_eq!(decode_health_response(&bad_varint), Err(Malformed));
    }
}
