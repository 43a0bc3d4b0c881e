//! WebSocket frame parsing (`portico_protocols::websocket::FrameParser`), as
//! the relay runs it: about 1 MiB of masked client frames of one size, fed
//! in 16 KiB reads. Criterion prints the throughput in bytes of stream per
//! second.
//!
//! `parse` only parses: the parser never reads payload bytes, so its cost is
//! per frame, and with large frames its figure is the frame rate times the
//! frame size, far beyond memory bandwidth. `parse_and_copy` also copies
//! what may be forwarded into an output buffer, as the relay does: that is
//! the figure for the relay's per-byte cost.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portico_protocols::websocket::{encode_frame, Event, FrameParser, Opcode, Sender};

/// The read size of the relay's upstream side.
const READ: usize = 16 * 1024;
const STREAM: usize = 1 << 20;

/// About [`STREAM`] bytes of masked binary frames with `size`-byte payloads.
fn stream_of(size: usize) -> Vec<u8> {
    let frame = encode_frame(Opcode::Binary, &vec![0x5a; size], Some([1, 2, 3, 4]));
    let count = (STREAM / frame.len()).max(1);
    frame.repeat(count)
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("websocket_frames");
    for size in [16usize, 1024, 64 * 1024] {
        let stream = stream_of(size);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", size), &stream, |b, stream| {
            b.iter(|| {
                let mut parser = FrameParser::new(Sender::Client, Some(1 << 20));
                let mut payload = 0usize;
                for chunk in stream.chunks(READ) {
                    let fed = parser.feed(black_box(chunk), |e| {
                        if let Event::Payload(p) = e {
                            payload += p.len();
                        }
                    });
                    assert!(fed.is_ok());
                }
                black_box(payload)
            })
        });
        group.bench_with_input(
            BenchmarkId::new("parse_and_copy", size),
            &stream,
            |b, stream| {
                let mut out = Vec::with_capacity(READ + 14);
                b.iter(|| {
                    let mut parser = FrameParser::new(Sender::Client, Some(1 << 20));
                    for chunk in stream.chunks(READ) {
                        out.clear();
                        let fed = parser.feed(black_box(chunk), |e| match e {
                            Event::Header { raw, .. } => out.extend_from_slice(raw),
                            Event::Payload(p) => out.extend_from_slice(p),
                            Event::FrameEnd { .. } => {}
                        });
                        assert!(fed.is_ok());
                        black_box(&out);
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
