//! The kubelet dials a plugin's registration socket with grpc-go and no
//! authority override, so its HTTP/2 requests carry the socket's path as
//! `:authority` (kubernetes/kubernetes #108254: its CSI client was fixed
//! with `WithAuthority("localhost")`, the registration dial was not).
//! hyper's HTTP/2 server (h2) rejects such a request as malformed
//! (PROTOCOL_ERROR), so a tonic server cannot answer the kubelet directly.
//!
//! [`relay`] sits between the kubelet's connection and the registration
//! server: it passes every frame through unchanged except the client's
//! header blocks, which it decodes (HPACK keeps state per connection, so
//! every block is decoded and re-encoded), gives `localhost` as the
//! authority, and encodes again. The server's frames go back untouched.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The connection preface every HTTP/2 client sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// SETTINGS_MAX_FRAME_SIZE's floor, which every peer accepts.
const MAX_FRAME: usize = 16_384;
/// What the authority becomes.
const AUTHORITY: &[u8] = b"localhost";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an HTTP/2 connection preface")]
    Preface,
    #[error("malformed HTTP/2 frame: {0}")]
    Frame(&'static str),
    #[error("header block: {0:?}")]
    Hpack(fluke_hpack::decoder::DecoderError),
}

/// One frame: its type, flags, stream and payload.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, RelayError> {
    let mut head = [0u8; 9];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    }))
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Rewrites client header blocks, one connection's worth of HPACK state.
pub struct Rewriter {
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            decoder: fluke_hpack::Decoder::new(),
            encoder: fluke_hpack::Encoder::new(),
        }
    }
}

impl Rewriter {
    /// The header block with `:authority` replaced by `localhost`.
    pub fn block(&mut self, block: &[u8]) -> Result<Vec<u8>, RelayError> {
        let headers = self.decoder.decode(block).map_err(RelayError::Hpack)?;
        let headers: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                if name == b":authority" {
                    (name, AUTHORITY.to_vec())
                } else {
                    (name, value)
                }
            })
            .collect();
        Ok(self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))))
    }

    /// The frames that replace a HEADERS frame (and its CONTINUATIONs,
    /// already joined into `fragment`).
    fn headers(
        &mut self,
        flags: u8,
        stream: u32,
        priority: &[u8],
        fragment: &[u8],
    ) -> Result<Vec<u8>, RelayError> {
        let block = self.block(fragment)?;
        let mut first = priority.to_vec();
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = block.split_at(block.len().min(room));
        first.extend_from_slice(head);
        let keep = flags & (END_STREAM | PRIORITY);
        let mut out = frame_bytes(
            HEADERS,
            keep | if rest.is_empty() { END_HEADERS } else { 0 },
            stream,
            &first,
        );
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
            rest = tail;
            let end = if rest.is_empty() { END_HEADERS } else { 0 };
            out.extend(frame_bytes(CONTINUATION, end, stream, chunk));
        }
        Ok(out)
    }
}

/// Relays one client connection to `server` until either side closes.
pub async fn relay<C, S>(client: C, server: S) -> Result<(), RelayError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_server, mut to_server) = tokio::io::split(server);
    let upstream = async {
        let mut preface = [0u8; 24];
        from_client.read_exact(&mut preface).await?;
        if &preface != PREFACE {
            return Err(RelayError::Preface);
        }
        to_server.write_all(&preface).await?;
        let mut rewriter = Rewriter::default();
        // A header block split over CONTINUATION frames: (flags, stream,
        // priority bytes, fragment so far).
        let mut open: Option<(u8, u32, Vec<u8>, Vec<u8>)> = None;
        while let Some(frame) = read_frame(&mut from_client).await? {
            match frame.kind {
                HEADERS => {
                    let mut body = frame.payload.as_slice();
                    let mut pad = 0;
                    if frame.flags & PADDED != 0 {
                        let (&n, rest) = body.split_first().ok_or(RelayError::Frame("padding"))?;
                        pad = usize::from(n);
                        body = rest;
                    }
                    let mut priority = Vec::new();
                    if frame.flags & PRIORITY != 0 {
                        if body.len() < 5 {
                            return Err(RelayError::Frame("priority"));
                        }
                        priority = body[..5].to_vec();
                        body = &body[5..];
                    }
                    let end = body
                        .len()
                        .checked_sub(pad)
                        .ok_or(RelayError::Frame("padding"))?;
                    let fragment = body[..end].to_vec();
                    if frame.flags & END_HEADERS != 0 {
                        let out =
                            rewriter.headers(frame.flags, frame.stream, &priority, &fragment)?;
                        to_server.write_all(&out).await?;
                    } else {
                        open = Some((frame.flags, frame.stream, priority, fragment));
                    }
                }
                CONTINUATION => {
                    let Some((flags, stream, priority, mut fragment)) = open.take() else {
                        return Err(RelayError::Frame("CONTINUATION without HEADERS"));
                    };
                    fragment.extend_from_slice(&frame.payload);
                    if frame.flags & END_HEADERS != 0 {
                        let out = rewriter.headers(flags, stream, &priority, &fragment)?;
                        to_server.write_all(&out).await?;
                    } else {
                        open = Some((flags, stream, priority, fragment));
                    }
                }
                kind => {
                    let out = frame_bytes(kind, frame.flags, frame.stream, &frame.payload);
                    to_server.write_all(&out).await?;
                }
            }
        }
        to_server.shutdown().await?;
        Ok::<(), RelayError>(())
    };
    let downstream = async {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await?;
        Ok::<(), RelayError>(())
    };
    // Either side closing ends the connection.
    tokio::select! {
        r = upstream => r,
        r = downstream => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(enc: &mut fluke_hpack::Encoder<'_>, authority: &[u8]) -> Vec<u8> {
        enc.encode([
            (b":method".as_slice(), b"POST".as_slice()),
            (b":scheme", b"http"),
            (b":path", b"/pluginregistration.Registration/GetInfo"),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
        ])
    }

    #[test]
    fn the_authority_becomes_localhost_and_everything_else_stays() {
        let mut kubelet = fluke_hpack::Encoder::new();
        let mut server = fluke_hpack::Decoder::new();
        let mut rw = Rewriter::default();
        // Twice: the second block refers to the first's dynamic table.
        for _ in 0..2 {
            let block = encode(
                &mut kubelet,
                b"/var/lib/kubelet/plugins_registry/csi.berth.dev-reg.sock",
            );
            let seen = server
                .decode(&rw.block(&block).expect("rewrite"))
                .expect("decode");
            let get = |n: &[u8]| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(get(b":authority").as_deref(), Some(AUTHORITY));
            assert_eq!(
                get(b":path").as_deref(),
                Some(b"/pluginregistration.Registration/GetInfo".as_slice())
            );
            assert_eq!(seen.len(), 5);
        }
    }

    #[test]
    fn header_frames_keep_their_stream_end_and_priority() {
        let mut kubelet = fluke_hpack::Encoder::new();
        let mut rw = Rewriter::default();
        let block = encode(&mut kubelet, b"/x.sock");
        let out = rw
            .headers(END_STREAM | PRIORITY | PADDED, 3, &[0, 0, 0, 1, 16], &block)
            .expect("frame");
        assert_eq!(out[3], HEADERS);
        assert_eq!(
            out[4],
            END_STREAM | PRIORITY | END_HEADERS,
            "padding is dropped"
        );
        assert_eq!(u32::from_be_bytes([out[5], out[6], out[7], out[8]]), 3);
        assert_eq!(&out[9..14], &[0, 0, 0, 1, 16]);
    }
}
