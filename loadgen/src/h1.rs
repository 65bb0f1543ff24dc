//! The direct transport's HTTP/1.1 exchange: one keep-alive connection,
//! each request written from one reused buffer in one write, each answer
//! parsed by httparse in one reused read buffer.
//!
//! Why not hyper's client connection, which this was: per request it
//! hands the request through a channel to the connection's dispatcher,
//! the answer back through a oneshot, builds a header map each way and
//! streams the body through another channel. At the rates the `max_rate`
//! bench drives, that was most of the generator's own CPU beside the
//! kernel's. What a load generator needs of HTTP/1.1 is small (one request
//! at a time on a connection, answers framed by content-length, chunks or
//! the connection's end, keep-alive), so it is here, as wrk has its own.
//! The `Goose` transport (reqwest) is there for everything else, https
//! included.

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much room each read gets: more than a typical answer, so a read
/// that ends one comes back short (which tells tokio the socket is drained
/// and keeps the idle check free of system calls).
const READ_CHUNK: usize = 16 * 1024;
/// The longest answer head (status line and headers) read.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer head may have.
const MAX_HEADERS: usize = 64;
/// The longest chunk-size line of a chunked body.
const MAX_CHUNK_LINE: usize = 1024;

/// One connection of one user.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Read and not yet used.
    buf: BytesMut,
    /// The next request, as it goes on the wire.
    pub out: Vec<u8>,
}

/// A whole answer.
pub(crate) struct Answered {
    pub status: u16,
    pub body: Bytes,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

/// How an exchange failed.
pub(crate) enum Failed {
    /// Writing failed, or the connection ended (or spoke no HTTP) before a
    /// whole answer head.
    Lost(String),
    /// The head came with this status; the body did not.
    BodyLost(u16, String),
}

/// What the head of an answer says about its body.
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    /// Until the connection ends.
    Close,
}

impl Conn {
    pub async fn connect(authority: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(authority).await?;
        // Requests are small and answered one at a time: no Nagle delay.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(512),
        })
    }

    /// Whether an idle connection can still take a request: nothing has
    /// arrived on it since the last answer (a server that closed it while
    /// idle makes it readable, at end of file). No system call unless the
    /// socket shows readable.
    pub fn still_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes [`Conn::out`] and reads the whole answer. A head request (no
    /// body wanted) is not sent from here, so every answer but 1xx, 204
    /// and 304 may have one.
    pub async fn exchange(&mut self) -> Result<Answered, Failed> {
        if let Err(e) = self.stream.write_all(&self.out).await {
            return Err(Failed::Lost(format!("connection lost: {e}")));
        }
        let head = self.head().await?;
        let lost = |why: String| Failed::BodyLost(head.status, why);
        self.buf.advance(head.len);
        let mut reusable = head.keep_alive;
        let body = match head.framing {
            Framing::None => Bytes::new(),
            Framing::Length(n) => {
                while self.buf.len() < n {
                    self.fill_or(|| "body lost: closed before the whole body".into())
                        .await
                        .map_err(lost)?;
                }
                self.buf.split_to(n).freeze()
            }
            Framing::Chunked => self.chunked().await.map_err(lost)?,
            Framing::Close => {
                reusable = false;
                loop {
                    match self.fill().await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(lost(format!("body lost: {e}"))),
                    }
                }
                self.buf.split().freeze()
            }
        };
        // Bytes past the answer were never asked for: the connection is
        // out of step.
        reusable &= self.buf.is_empty();
        Ok(Answered {
            status: head.status,
            body,
            reusable,
        })
    }

    /// Reads until a whole head (past any 1xx interim answers) is in the
    /// buffer, and reads it.
    async fn head(&mut self) -> Result<Head, Failed> {
        loop {
            if let Some(head) = parse_head(&self.buf).map_err(Failed::Lost)? {
                if (100..200).contains(&head.status) && head.status != 101 {
                    self.buf.advance(head.len);
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Failed::Lost(format!(
                    "connection lost: an answer head over {MAX_HEAD} bytes"
                )));
            }
            self.fill_or(|| "connection lost: closed before a whole answer".into())
                .await
                .map_err(Failed::Lost)?;
        }
    }

    /// A chunked body, decoded, with any trailers read and dropped.
    async fn chunked(&mut self) -> Result<Bytes, String> {
        let mut body = BytesMut::new();
        loop {
            let line = self.line().await?;
            let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| "body lost: a chunk size that is not hex".to_string())?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            let whole = size
                .checked_add(2)
                .ok_or_else(|| "body lost: a chunk size past memory".to_string())?;
            while self.buf.len() < whole {
                self.fill_or(|| "body lost: closed inside a chunk".into())
                    .await?;
            }
            if &self.buf[size..whole] != b"\r\n" {
                return Err("body lost: a chunk not ended by CRLF".into());
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.advance(whole);
        }
    }

    /// The next CRLF-ended line of the buffer, without its CRLF.
    async fn line(&mut self) -> Result<Bytes, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(format!(
                    "body lost: a chunk line over {MAX_CHUNK_LINE} bytes"
                ));
            }
            self.fill_or(|| "body lost: closed inside a chunked body".into())
                .await?;
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads more, or says why not: `closed` at end of file.
    async fn fill_or(&mut self, closed: impl FnOnce() -> String) -> Result<(), String> {
        match self.fill().await {
            Ok(0) => Err(closed()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("connection lost: {e}")),
        }
    }
}

/// The head at the start of `buf`, if all of it is there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("connection lost: not an HTTP answer ({e})")),
    };
    let status = res.code.unwrap_or(0);
    let http11 = res.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    let mut close = !http11;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    "connection lost: a content-length that is not a number".to_string()
                })?;
            if length.is_some_and(|m| m != n) {
                return Err("connection lost: two different content-lengths".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .next_back()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        // Chunked wins over a content-length (RFC 9112, 6.3).
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::Close
    };
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive: !close && status != 101,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that reads one request and writes `answer` in `pieces`
    /// (split points), then keeps the connection open or closes it.
    async fn one_answer(answer: &'static [u8], pieces: &'static [usize], close: bool) -> Conn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            let mut at = 0;
            for &p in pieces.iter().chain([answer.len()].iter()) {
                let _ = s.write_all(&answer[at..p]).await;
                let _ = s.flush().await;
                tokio::task::yield_now().await;
                at = p;
            }
            if !close {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        let mut c = Conn::connect(&addr.to_string()).await.unwrap();
        c.out
            .extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        c
    }

    fn ok(r: Result<Answered, Failed>) -> Answered {
        match r {
            Ok(a) => a,
            Err(Failed::Lost(w)) => panic!("lost: {w}"),
            Err(Failed::BodyLost(s, w)) => panic!("body lost ({s}): {w}"),
        }
    }

    #[tokio::test]
    async fn a_content_length_answer_split_anywhere_is_read_whole_and_keeps_the_connection() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let mut c = one_answer(answer, &[3, 20, 40], false).await;
        let a = ok(c.exchange().await);
        assert_eq!(
            (a.status, &a.body[..], a.reusable),
            (200, &b"hello"[..], true)
        );
        assert!(c.still_open());
    }

    #[tokio::test]
    async fn a_chunked_answer_with_an_interim_100_and_trailers_is_decoded() {
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\
            transfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0A\r\n0123456789\r\n0\r\nt: v\r\n\r\n";
        let mut c = one_answer(answer, &[10, 60, 75], false).await;
        let a = ok(c.exchange().await);
        assert_eq!(a.status, 201);
        assert_eq!(&a.body[..], b"abc0123456789");
        assert!(a.reusable);
    }

    #[tokio::test]
    async fn an_answer_without_length_runs_to_the_close_and_ends_the_connection() {
        let answer = b"HTTP/1.1 503 Service Unavailable\r\n\r\ndown";
        let mut c = one_answer(answer, &[], true).await;
        let a = ok(c.exchange().await);
        assert_eq!(
            (a.status, &a.body[..], a.reusable),
            (503, &b"down"[..], false)
        );
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_are_not_reused_and_204_has_no_body() {
        let mut c = one_answer(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            &[],
            false,
        )
        .await;
        assert!(!ok(c.exchange().await).reusable);
        let mut c = one_answer(
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n[]",
            &[],
            false,
        )
        .await;
        assert!(!ok(c.exchange().await).reusable);
        let mut c = one_answer(b"HTTP/1.1 204 No Content\r\n\r\n", &[], false).await;
        let a = ok(c.exchange().await);
        assert_eq!((a.status, a.body.len(), a.reusable), (204, 0, true));
    }

    #[tokio::test]
    async fn a_close_mid_head_is_lost_and_mid_body_is_body_lost_with_the_status() {
        let mut c = one_answer(b"HTTP/1.1 200 OK\r\ncontent-le", &[], true).await;
        assert!(matches!(c.exchange().await, Err(Failed::Lost(_))));
        let mut c = one_answer(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhal",
            &[],
            true,
        )
        .await;
        assert!(matches!(c.exchange().await, Err(Failed::BodyLost(200, _))));
        let mut c = one_answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            &[],
            true,
        )
        .await;
        assert!(matches!(c.exchange().await, Err(Failed::BodyLost(200, _))));
        let mut c = one_answer(b"SSH-2.0-OpenSSH\r\n\r\n", &[], true).await;
        assert!(matches!(c.exchange().await, Err(Failed::Lost(_))));
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_not_still_open() {
        let mut c = one_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", &[], true).await;
        assert!(ok(c.exchange().await).reusable);
        // The server has hung up after answering; wait for the FIN to land.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while c.still_open() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!c.still_open());
    }
}
