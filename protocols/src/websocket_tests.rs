use super::*;
use proptest::prelude::*;

/// What a parser reported, with payload slices joined per frame so that
/// different chunkings of one stream compare equal.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Header(FrameHeader, Vec<u8>),
    Payload(Vec<u8>),
    End(Opcode, bool),
}

fn feed_chunks(parser: &mut FrameParser, chunks: &[&[u8]]) -> (Vec<Seen>, Result<(), FrameError>) {
    let mut seen = Vec::new();
    for chunk in chunks {
        let result = parser.feed(chunk, |event| match event {
            Event::Header { header, raw } => seen.push(Seen::Header(header, raw.to_vec())),
            Event::Payload(p) => match seen.last_mut() {
                Some(Seen::Payload(acc)) => acc.extend_from_slice(p),
                _ => seen.push(Seen::Payload(p.to_vec())),
            },
            Event::FrameEnd {
                opcode,
                message_end,
            } => seen.push(Seen::End(opcode, message_end)),
        });
        if result.is_err() {
            return (seen, result);
        }
    }
    (seen, Ok(()))
}

fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = encode_frame(opcode, payload, mask);
    if !fin {
        f[0] &= 0x7F;
    }
    f
}

const KEY: [u8; 4] = [1, 2, 3, 4];

#[test]
fn the_accept_key_matches_the_rfc_example() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn only_a_base64_nonce_of_sixteen_bytes_is_a_valid_key() {
    assert!(key_is_valid(b"dGhlIHNhbXBsZSBub25jZQ=="));
    assert!(!key_is_valid(b""));
    assert!(!key_is_valid(b"dGhlIHNhbXBsZQ=="));
    assert!(!key_is_valid(b"dGhlIHNhbXBsZSBub25jZQ!!"));
    // 17 bytes.
    assert!(!key_is_valid(b"dGhlIHNhbXBsZSBub25jZTE="));
}

#[test]
fn a_masked_client_frame_is_reported_header_payload_and_end() {
    let bytes = frame(true, Opcode::Text, b"hello", Some(KEY));
    let mut p = FrameParser::new(Sender::Client, None);
    let (seen, result) = feed_chunks(&mut p, &[&bytes]);
    assert_eq!(result, Ok(()));
    let header = FrameHeader {
        fin: true,
        opcode: Opcode::Text,
        mask: Some(KEY),
        payload_len: 5,
    };
    assert_eq!(
        seen,
        vec![
            Seen::Header(header, bytes[..6].to_vec()),
            Seen::Payload(bytes[6..].to_vec()),
            Seen::End(Opcode::Text, true),
        ]
    );
    assert!(p.at_frame_boundary());
}

#[test]
fn masking_must_follow_the_sender() {
    let unmasked = frame(true, Opcode::Binary, b"x", None);
    let mut client = FrameParser::new(Sender::Client, None);
    assert_eq!(
        feed_chunks(&mut client, &[&unmasked]).1,
        Err(FrameError::Unmasked)
    );
    let masked = frame(true, Opcode::Binary, b"x", Some(KEY));
    let mut server = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut server, &[&masked]).1,
        Err(FrameError::Masked)
    );
}

#[test]
fn reserved_bits_and_opcodes_are_refused() {
    let mut rsv = frame(true, Opcode::Text, b"a", None);
    rsv[0] |= 0x40;
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&rsv]).1,
        Err(FrameError::ReservedBits)
    );
    let mut op = frame(true, Opcode::Text, b"a", None);
    op[0] = 0x83;
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&op]).1,
        Err(FrameError::ReservedOpcode(3))
    );
}

#[test]
fn control_frames_are_short_and_whole() {
    let mut long = vec![0x89, 126, 0, 126];
    long.extend_from_slice(&[0; 126]);
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&long]).1,
        Err(FrameError::ControlTooLong)
    );
    let fragmented = frame(false, Opcode::Ping, b"", None);
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&fragmented]).1,
        Err(FrameError::ControlFragmented)
    );
}

#[test]
fn continuations_need_an_open_message_and_messages_do_not_interleave() {
    let stray = frame(true, Opcode::Continuation, b"a", None);
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&stray]).1,
        Err(FrameError::NothingToContinue)
    );
    let first = frame(false, Opcode::Text, b"a", None);
    let second = frame(true, Opcode::Binary, b"b", None);
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&first, &second]).1,
        Err(FrameError::MessageInterrupted)
    );
}

#[test]
fn a_ping_between_fragments_is_allowed_and_ends_no_message() {
    let mut stream = frame(false, Opcode::Text, b"ab", Some(KEY));
    stream.extend(frame(true, Opcode::Ping, b"p", Some(KEY)));
    stream.extend(frame(true, Opcode::Continuation, b"cd", Some(KEY)));
    let mut p = FrameParser::new(Sender::Client, Some(4));
    let (seen, result) = feed_chunks(&mut p, &[&stream]);
    assert_eq!(result, Ok(()));
    let ends: Vec<_> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::End(op, m) => Some((*op, *m)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![
            (Opcode::Text, false),
            (Opcode::Ping, false),
            (Opcode::Continuation, true)
        ]
    );
}

#[test]
fn a_message_over_the_limit_across_fragments_is_refused_before_its_header_is_reported() {
    let first = frame(false, Opcode::Binary, &[7; 600], None);
    let second = frame(true, Opcode::Continuation, &[7; 600], None);
    let mut p = FrameParser::new(Sender::Server, Some(1000));
    let (seen, result) = feed_chunks(&mut p, &[&first, &second]);
    assert_eq!(result, Err(FrameError::MessageTooLarge { limit: 1000 }));
    assert_eq!(result.unwrap_err().close_code(), 1009);
    let headers = seen
        .iter()
        .filter(|s| matches!(s, Seen::Header(..)))
        .count();
    assert_eq!(headers, 1, "the continuation's header must not be reported");
    // A failed parser stays failed.
    assert!(p.feed(b"\x81\x00", |_| {}).is_err());
}

#[test]
fn a_message_exactly_at_the_limit_passes() {
    let bytes = frame(true, Opcode::Binary, &[1; 1000], None);
    let mut p = FrameParser::new(Sender::Server, Some(1000));
    assert_eq!(feed_chunks(&mut p, &[&bytes]).1, Ok(()));
}

#[test]
fn a_length_with_the_top_bit_set_is_refused() {
    let mut bytes = vec![0x82, 127];
    bytes.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(
        feed_chunks(&mut p, &[&bytes]).1,
        Err(FrameError::LengthOverflow)
    );
}

#[test]
fn long_frames_use_the_sixteen_and_sixty_four_bit_lengths() {
    for len in [125usize, 126, 65_535, 65_536, 70_000] {
        let payload = vec![9u8; len];
        let bytes = encode_frame(Opcode::Binary, &payload, Some(KEY));
        let mut p = FrameParser::new(Sender::Client, None);
        let (seen, result) = feed_chunks(&mut p, &[&bytes]);
        assert_eq!(result, Ok(()));
        let Seen::Header(header, _) = &seen[0] else {
            panic!("no header first: {seen:?}");
        };
        assert_eq!(header.payload_len, len as u64);
        let unmasked: Vec<u8> = match &seen[1] {
            Seen::Payload(p) => p
                .iter()
                .zip(KEY.iter().cycle())
                .map(|(b, k)| b ^ k)
                .collect(),
            other => panic!("no payload second: {other:?}"),
        };
        assert_eq!(unmasked, payload);
    }
}

#[test]
fn a_close_frame_carries_its_code_and_a_reason_cut_at_a_character() {
    let bytes = close_frame(1009, "message too big", None);
    assert_eq!(&bytes[..4], &[0x88, 17, 0x03, 0xF1]);
    assert_eq!(&bytes[4..], b"message too big");
    let long = "é".repeat(100);
    let bytes = close_frame(1001, &long, None);
    let len = usize::from(bytes[1]);
    assert!(len <= 125);
    assert!(std::str::from_utf8(&bytes[4..]).is_ok());
    let mut p = FrameParser::new(Sender::Server, None);
    assert_eq!(feed_chunks(&mut p, &[&bytes]).1, Ok(()));
}

#[test]
fn a_masked_ping_parses_as_a_client_frame() {
    let bytes = ping_frame(b"portico", Some(KEY));
    let mut p = FrameParser::new(Sender::Client, None);
    let (seen, result) = feed_chunks(&mut p, &[&bytes]);
    assert_eq!(result, Ok(()));
    assert_eq!(seen.last(), Some(&Seen::End(Opcode::Ping, false)));
}

#[test]
fn a_half_header_is_held_until_it_is_complete() {
    let bytes = frame(true, Opcode::Binary, &[5; 300], Some(KEY));
    let mut p = FrameParser::new(Sender::Client, None);
    let (seen, _) = feed_chunks(&mut p, &[&bytes[..3]]);
    assert!(seen.is_empty());
    // Nothing of the frame was reported: a frame of one's own may go first.
    assert!(p.at_frame_boundary());
    let (seen, _) = feed_chunks(&mut p, &[&bytes[3..10]]);
    assert!(matches!(&seen[0], Seen::Header(_, raw) if raw[..] == bytes[..8]));
    // Now its payload is owed.
    assert!(!p.at_frame_boundary());
}

/// One frame of a valid stream: a data message split into fragments, with
/// control frames between them.
fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let message = (
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..126)),
        any::<[u8; 4]>(),
    );
    prop::collection::vec(message, 0..6).prop_map(|messages| {
        let mut out = Vec::new();
        for (text, fragments, ping, key) in messages {
            let last = fragments.len() - 1;
            for (i, f) in fragments.iter().enumerate() {
                let opcode = match (i, text) {
                    (0, true) => Opcode::Text,
                    (0, false) => Opcode::Binary,
                    _ => Opcode::Continuation,
                };
                out.extend(frame(i == last, opcode, f, Some(key)));
                if let (Some(p), true) = (&ping, i == 0) {
                    out.extend(frame(true, Opcode::Ping, p, Some(key)));
                }
            }
        }
        out
    })
}

proptest! {
    #[test]
    fn splitting_the_stream_anywhere_yields_the_same_frames(
        stream in stream_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut whole = FrameParser::new(Sender::Client, None);
        let (expected, result) = feed_chunks(&mut whole, &[&stream]);
        prop_assert_eq!(result, Ok(()));
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for p in points {
            chunks.push(&stream[from..p]);
            from = p;
        }
        chunks.push(&stream[from..]);
        let mut split = FrameParser::new(Sender::Client, None);
        let (seen, result) = feed_chunks(&mut split, &chunks);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(&seen, &expected);
        prop_assert!(split.at_frame_boundary());
        // Forwarding what the parser reports rebuilds the stream exactly.
        let mut rebuilt = Vec::new();
        for s in &seen {
            match s {
                Seen::Header(_, raw) => rebuilt.extend_from_slice(raw),
                Seen::Payload(p) => rebuilt.extend_from_slice(p),
                Seen::End(..) => {}
            }
        }
        prop_assert_eq!(rebuilt, stream);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        limit in prop::option::of(0u64..1000),
    ) {
        for sender in [Sender::Client, Sender::Server] {
            let mut p = FrameParser::new(sender, limit);
            let _ = p.feed(&bytes, |_| {});
        }
    }
}
