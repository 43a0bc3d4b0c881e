//! WebSocket peers for the tests: a tokio-tungstenite echo server, an
//! upstream that refuses every handshake, and a client connected through
//! the gateway, all on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::tls::Leaf;

/// What the upstream saw.
#[derive(Default)]
pub struct WsState {
    /// TCP connections accepted: a refused handshake must leave this at 0.
    pub connections: AtomicUsize,
    /// Close codes the upstream received (`None` for a close without one).
    pub close_codes: Mutex<Vec<Option<u16>>>,
}

impl WsState {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn close_codes(&self) -> Vec<Option<u16>> {
        self.close_codes.lock().unwrap().clone()
    }
}

/// A running WebSocket upstream; stops when dropped.
pub struct WsUpstream {
    pub addr: SocketAddr,
    pub state: Arc<WsState>,
    task: JoinHandle<()>,
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// No size limit on the test peers: the gateway's limits are under test.
pub fn unlimited() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

impl WsUpstream {
    /// Echoes every text and binary message back as it came; answers pings
    /// (tungstenite does) and records the close codes it receives.
    pub async fn echo() -> WsUpstream {
        WsUpstream::greeting(None).await
    }

    /// Like [`WsUpstream::echo`], first sending a binary message of
    /// `greeting` bytes right behind its 101, before the client says anything.
    pub async fn greeting(greeting: Option<usize>) -> WsUpstream {
        WsUpstream::serve(move |tcp, state| echo_on(tcp, state, greeting)).await
    }

    /// A subscription server speaking `graphql-transport-ws`: it picks that
    /// subprotocol, acknowledges `connection_init`, and answers each
    /// `subscribe` with one `next` naming `served_by` and a `complete`.
    pub async fn graphql_ws(served_by: &'static str) -> WsUpstream {
        WsUpstream::serve(move |tcp, _| graphql_ws_on(tcp, served_by)).await
    }

    /// [`WsUpstream::echo`] over TLS with `leaf`'s certificate.
    pub async fn echo_tls(leaf: &Leaf) -> WsUpstream {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(leaf.server_config()));
        WsUpstream::serve(move |tcp, state| {
            let acceptor = acceptor.clone();
            async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    echo_on(tls, state, None).await;
                }
            }
        })
        .await
    }

    /// Answers every handshake with `status` and `body`, sent with a
    /// content length or chunked.
    pub async fn refusing(status: u16, body: &'static str, chunked: bool) -> WsUpstream {
        let answer = if chunked {
            format!(
                "HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\n\
                 transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
        } else {
            format!(
                "HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        WsUpstream::answering(answer).await
    }

    /// Reads each request head and writes `answer` exactly as given.
    pub async fn answering(answer: String) -> WsUpstream {
        let answer = Arc::new(answer);
        WsUpstream::serve(move |mut tcp, _| {
            let answer = Arc::clone(&answer);
            async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = tcp.write_all(answer.as_bytes()).await;
            }
        })
        .await
    }

    async fn serve<F, Fut>(handler: F) -> WsUpstream
    where
        F: Fn(TcpStream, Arc<WsState>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(WsState::default());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handler(tcp, Arc::clone(&shared)));
            }
        });
        WsUpstream { addr, state, task }
    }
}

/// The echo server's side of one connection.
async fn echo_on<S>(stream: S, state: Arc<WsState>, greeting: Option<usize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(unlimited())).await
    else {
        return;
    };
    if let Some(len) = greeting {
        if ws.send(Message::binary(vec![b'g'; len])).await.is_err() {
            return;
        }
    }
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(frame) = &msg {
            let code = frame.as_ref().map(|f| u16::from(f.code));
            state.close_codes.lock().unwrap().push(code);
        } else if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// Picks `graphql-transport-ws` in the 101.
// The error type is tungstenite's callback signature, not ours to shrink.
#[allow(clippy::result_large_err)]
fn choose_graphql_ws(
    _: &tokio_tungstenite::tungstenite::handshake::server::Request,
    mut response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    response.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    Ok(response)
}

/// The subscription server's side of one connection.
async fn graphql_ws_on(tcp: TcpStream, served_by: &'static str) {
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(tcp, choose_graphql_ws, Some(unlimited()))
            .await
    else {
        return;
    };
    while let Some(Ok(Message::Text(text))) = ws.next().await {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let replies = match msg["type"].as_str() {
            Some("connection_init") => vec![serde_json::json!({ "type": "connection_ack" })],
            Some("subscribe") => vec![
                serde_json::json!({
                    "id": msg["id"], "type": "next",
                    "payload": { "data": { "served_by": served_by } }
                }),
                serde_json::json!({ "id": msg["id"], "type": "complete" }),
            ],
            _ => return,
        };
        for reply in replies {
            if ws.send(Message::text(reply.to_string())).await.is_err() {
                return;
            }
        }
    }
}

/// A WebSocket client connected to the gateway's `port` at `path`, over a
/// TCP stream the test can also write raw frames to.
pub async fn connect(port: u16, path: &str) -> WebSocketStream<TcpStream> {
    try_connect(port, path, &[]).await.unwrap()
}

/// Like [`connect`], with extra handshake header fields; a refused
/// handshake is the error.
pub async fn try_connect(
    port: u16,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    for (name, value) in fields {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(unlimited())).await?;
    Ok(ws)
}

/// A masked frame as a client writes it, built by hand so that tests can
/// send what a library would not (fragments, oversized control frames).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

/// The next close frame's code, reading past other messages; `None` when
/// the stream ends without one.
pub async fn close_code(ws: &mut WebSocketStream<TcpStream>) -> Option<u16> {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(frame) = msg {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}
