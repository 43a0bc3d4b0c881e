//! The frame relay of one WebSocket connection, after both 101s.
//!
//! One task serves both directions. Pingora's downstream session allows one
//! operation at a time, so client reads and writes alternate; the upstream
//! connection is split, and its writes run beside the reads, so neither
//! side can stall the other as long as the client reads what it is sent.
//! Every byte passes through a [`FrameParser`] per direction: a frame is
//! forwarded only once its header is known to be valid and within the
//! route's message limit, and the gateway's own frames (pings, closes) are
//! written only between frames.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pingora::protocols::Stream;
use pingora::proxy::Session;
use portico_protocols::websocket::{
    close_frame, ping_frame, Event, FrameError, FrameParser, Opcode, Sender, CLOSE_GOING_AWAY,
};
use prometheus::IntCounter;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::time::{sleep_until, timeout, Instant};

/// Room for one read from the upstream: a 16 KiB message with its header
/// fits in one read instead of two.
const READ_SIZE: usize = 64 * 1024;

use crate::observe::metrics::metrics;

/// Bytes read from the client and not yet written upstream past which the
/// client is not read: a slow upstream slows the client down instead of
/// growing this buffer.
const HIGH_WATER: usize = 256 * 1024;
/// How long the last bytes and the close frame may take to reach the
/// upstream when the relay ends.
const FLUSH_TIME: Duration = Duration::from_secs(5);
/// After its close frame, how long the client is read (and its bytes
/// dropped) so that closing the socket does not reset the connection before
/// the client has read the close: quiet time, and the whole wait at most.
const DRAIN_QUIET: Duration = Duration::from_millis(300);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// How often the relay looks whether the process has begun to stop (Pingora
/// offers a flag, not a notification).
const SHUTDOWN_POLL: Duration = Duration::from_secs(1);

/// A route's limits as the relay applies them.
pub(crate) struct Limits {
    pub max_message: u64,
    pub idle_timeout: Duration,
    pub ping_interval: Option<Duration>,
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client closed its connection (or it broke).
    ClientClosed,
    /// The upstream closed its connection (or it broke).
    UpstreamClosed,
    /// Nothing passed in either direction for the idle timeout.
    Idle,
    /// The process stopped accepting connections to shut down or hand over
    /// to a new one: clients are told to reconnect, which reaches the
    /// successor if there is one.
    ShuttingDown,
    /// The client sent a frame the gateway refuses.
    ClientBroke(FrameError),
    /// The upstream sent a frame the gateway refuses.
    UpstreamBroke(FrameError),
}

impl End {
    /// The close code both sides are sent, when the gateway ends the
    /// connection itself.
    fn close_code(self) -> Option<u16> {
        match self {
            End::Idle | End::ShuttingDown => Some(CLOSE_GOING_AWAY),
            End::ClientBroke(e) | End::UpstreamBroke(e) => Some(e.close_code()),
            End::ClientClosed | End::UpstreamClosed => None,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            End::Idle => "idle timeout",
            End::ShuttingDown => "server going away",
            End::ClientBroke(FrameError::MessageTooLarge { .. })
            | End::UpstreamBroke(FrameError::MessageTooLarge { .. }) => "message too big",
            _ => "protocol error",
        }
    }
}

/// One direction: its parser and its message counter.
struct Direction {
    parser: FrameParser,
    messages: IntCounter,
}

impl Direction {
    fn new(sender: Sender, max: u64, route: &str, label: &str) -> Direction {
        Direction {
            parser: FrameParser::new(sender, Some(max)),
            messages: metrics().ws_messages.with_label_values(&[route, label]),
        }
    }

    /// The bytes of `input` that may be forwarded: all of them except a
    /// header not yet complete, and nothing from a refused frame on.
    ///
    /// Usually that is a prefix of `input`, returned as a slice of it without
    /// a copy; only when the parser hands back a header it had to hold over
    /// from an earlier read (its own bytes, not `input`'s) is the result
    /// copied together.
    fn forward(&mut self, input: &Bytes) -> (Bytes, Result<(), FrameError>) {
        let start = input.as_ptr() as usize;
        // How much of `input`, from its start, the events have covered so far.
        let mut covered = 0usize;
        let mut copied: Option<BytesMut> = None;
        let mut ended = 0;
        let result = self.parser.feed(input, |event| {
            let part = match event {
                Event::Header { raw, .. } => raw,
                Event::Payload(p) => p,
                Event::FrameEnd { message_end, .. } => {
                    ended += u64::from(message_end);
                    return;
                }
            };
            if let Some(out) = copied.as_mut() {
                out.extend_from_slice(part);
            } else if part.as_ptr() as usize == start + covered
                && covered + part.len() <= input.len()
            {
                covered += part.len();
            } else {
                let mut out = BytesMut::with_capacity(input.len() + part.len());
                out.extend_from_slice(input.get(..covered).unwrap_or_default());
                out.extend_from_slice(part);
                copied = Some(out);
            }
        });
        if ended > 0 {
            self.messages.inc_by(ended);
        }
        let out = match copied {
            Some(out) => out.freeze(),
            None => input.slice(..covered.min(input.len())),
        };
        (out, result)
    }
}

/// The idle and ping timers. A connection is active while bytes arrive from
/// either side; the client's answers to the gateway's pings count.
struct Clock {
    idle: Duration,
    ping: Option<Duration>,
    heard: Instant,
    pinged: Instant,
}

impl Clock {
    fn next(&self) -> Instant {
        let idle_at = self.heard + self.idle;
        match self.ping {
            Some(every) => idle_at.min(self.heard.max(self.pinged) + every),
            None => idle_at,
        }
    }
}

/// Relays frames between the client's session and `upstream` until one side
/// closes, a limit is hit or the connection idles out. `early` holds bytes
/// the upstream sent right behind its 101.
pub(crate) async fn run(
    session: &mut Session,
    upstream: Stream,
    early: BytesMut,
    limits: &Limits,
    route: &str,
) -> End {
    let max = limits.max_message;
    let mut up = Direction::new(Sender::Client, max, route, "client_to_upstream");
    let mut down = Direction::new(Sender::Server, max, route, "upstream_to_client");
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let mut pending = Pending::default();
    let mut inbound = BytesMut::with_capacity(READ_SIZE);
    let now = Instant::now();
    let mut clock = Clock {
        idle: limits.idle_timeout,
        ping: limits.ping_interval,
        heard: now,
        pinged: now,
    };
    // A client that stops reading stalls the relay in a write, where the
    // idle timer cannot run; the write gets the same time instead.
    let stall = limits.idle_timeout;
    let mut end = to_client(session, &mut down, &early.freeze(), stall)
        .await
        .err();
    // One timer for the connection, moved only when it fires: setting a new
    // one for every message cost a timer-wheel insert and removal each time.
    // Firing early is harmless, as the branch below looks at the clock again.
    let timer = sleep_until(clock.next().min(now + SHUTDOWN_POLL));
    tokio::pin!(timer);
    while end.is_none() {
        // Takes back the same buffer once the last slice of it is written.
        inbound.reserve(READ_SIZE);
        tokio::select! {
            read = session.read_request_body(), if pending.len < HIGH_WATER => match read {
                Ok(Some(bytes)) => {
                    clock.heard = Instant::now();
                    let (out, parsed) = up.forward(&bytes);
                    pending.push(out);
                    end = parsed.err().map(End::ClientBroke);
                }
                Ok(None) | Err(_) => end = Some(End::ClientClosed),
            },
            read = up_read.read_buf(&mut inbound) => match read {
                Ok(0) | Err(_) => end = Some(End::UpstreamClosed),
                Ok(_) => {
                    clock.heard = Instant::now();
                    let input = inbound.split().freeze();
                    end = to_client(session, &mut down, &input, stall).await.err();
                }
            },
            written = up_write.write(pending.front()), if pending.len > 0 => match written {
                Ok(0) | Err(_) => end = Some(End::UpstreamClosed),
                Ok(n) => pending.advance(n),
            },
            () = &mut timer => {
                let now = Instant::now();
                if session.is_process_shutting_down() {
                    end = Some(End::ShuttingDown);
                } else if now >= clock.heard + clock.idle {
                    end = Some(End::Idle);
                } else if clock
                    .ping
                    .is_some_and(|every| now >= clock.heard.max(clock.pinged) + every)
                {
                    end = ping(session, &down, stall).await.err();
                    clock.pinged = now;
                }
                timer.as_mut().reset(clock.next().min(Instant::now() + SHUTDOWN_POLL));
            }
        }
    }
    let end = end.unwrap_or(End::ClientClosed);
    finish(session, up_write, pending, &up, &down, end).await;
    end
}

/// Bytes read from the client and not yet written upstream, kept as the
/// slices they were read in rather than copied into one buffer.
#[derive(Default)]
struct Pending {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Pending {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }

    /// Drops `n` written bytes from the front (never more than the first chunk
    /// holds, as writes are made from it alone).
    fn advance(&mut self, n: usize) {
        if let Some(first) = self.chunks.front_mut() {
            let n = n.min(first.len());
            first.advance(n);
            self.len -= n;
            if first.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

/// Forwards upstream bytes to the client, the valid part first when a frame
/// is refused.
async fn to_client(
    session: &mut Session,
    down: &mut Direction,
    input: &Bytes,
    stall: Duration,
) -> Result<(), End> {
    let (out, parsed) = down.forward(input);
    if !out.is_empty() {
        write_client(session, out, stall).await?;
    }
    parsed.map_err(End::UpstreamBroke)
}

/// Pings the client, when the upstream's stream to it is between frames; a
/// ping skipped now goes out at the next interval.
async fn ping(session: &mut Session, down: &Direction, stall: Duration) -> Result<(), End> {
    if !down.parser.at_frame_boundary() {
        return Ok(());
    }
    write_client(session, Bytes::from(ping_frame(b"portico", None)), stall).await
}

/// Writes to the client; a client that has not taken the bytes within
/// `stall` is treated as gone.
async fn write_client(session: &mut Session, bytes: Bytes, stall: Duration) -> Result<(), End> {
    match timeout(stall, session.write_response_body(Some(bytes), false)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::ClientClosed),
    }
}

/// Ends the connection: a close frame to each side when the gateway ends
/// it, what the client sent delivered upstream, then the sockets closed.
async fn finish(
    session: &mut Session,
    mut up_write: WriteHalf<Stream>,
    mut pending: Pending,
    up: &Direction,
    down: &Direction,
    end: End,
) {
    let mut closed_client = false;
    // Known limitation: a side whose stream is in the middle of a frame
    // cannot be sent a close frame (it would land inside that frame's
    // payload); its socket is only closed.
    if let Some(code) = end.close_code() {
        if down.parser.at_frame_boundary() {
            let frame = close_frame(code, end.reason(), None);
            closed_client = write_client(session, Bytes::from(frame), FLUSH_TIME)
                .await
                .is_ok();
        }
        if up.parser.at_frame_boundary() {
            // The gateway is the upstream's client here, and client frames
            // are masked; the key only has to be unpredictable to the peer.
            let mask = fastrand::u32(..).to_be_bytes();
            pending.push(Bytes::from(close_frame(code, end.reason(), Some(mask))));
        }
    }
    let _ = timeout(FLUSH_TIME, async {
        for chunk in &pending.chunks {
            up_write.write_all(chunk).await?;
        }
        up_write.shutdown().await
    })
    .await;
    if closed_client && end != End::ClientClosed {
        drain(session, up, end).await;
    }
}

/// Reads and drops what the client still sends after its close frame, so
/// that unread bytes do not make the socket's close a reset that could
/// destroy the close frame before the client reads it. Ends at the client's
/// own close frame when its stream can still be parsed, at end of stream,
/// after a quiet spell, or at the latest after [`DRAIN_MAX`].
async fn drain(session: &mut Session, up: &Direction, end: End) {
    let mut parser = match end {
        End::ClientBroke(_) => None,
        _ => Some(up.parser.clone()),
    };
    let deadline = Instant::now() + DRAIN_MAX;
    loop {
        let quiet = Instant::now() + DRAIN_QUIET;
        let read = timeout(
            quiet
                .min(deadline)
                .saturating_duration_since(Instant::now()),
            session.read_request_body(),
        )
        .await;
        let Ok(Ok(Some(bytes))) = read else {
            return;
        };
        if let Some(p) = parser.as_mut() {
            let mut closed = false;
            let parsed = p.feed(&bytes, |e| {
                closed |= matches!(
                    e,
                    Event::FrameEnd {
                        opcode: Opcode::Close,
                        ..
                    }
                );
            });
            if closed || parsed.is_err() {
                return;
            }
        }
    }
}
