//! A lean HTTP/1.1 load driver for the hot scenarios: one kept-alive TCP
//! connection per worker, requests written as prepared bytes, responses
//! parsed just enough to find the status and the body.
//!
//! The load generator shares the machine's two cores with the service it
//! measures, so whatever it spends is taken from the figure. A general
//! client (reqwest over hyper, with its pool, header maps and per-request
//! allocations) spends several times what a request needs; this one spends
//! little more than the two system calls, as `wrk` does. Setup and the
//! scenarios that follow redirects or keep cookies stay on reqwest.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::load::{workers, Scenario};

/// Longest wait for a response before the request counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A request as bytes: `method path` with `Host`, the given headers and,
/// when there is one, the body with its length.
pub fn request(
    method: &str,
    url: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let host = authority(url);
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of an `Authorization: Basic` header.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `host:port` of an `http://host:port[/...]` URL.
pub fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// One kept-alive connection; it reconnects after an error or a
/// `Connection: close`.
pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Where the last response ended in `buf` (dropped at the next call).
    consumed: usize,
    /// A chunked body, decoded.
    dechunked: Vec<u8>,
    /// What the last response's head said about retrying.
    last: Meta,
}

/// Headers of the last response that tell a refusal from a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// It had a `Retry-After` header.
    pub retry_after: bool,
    /// Its body was `application/problem+json`.
    pub problem: bool,
}

/// Where a response's body is.
enum Body {
    Range(usize, usize),
    Dechunked,
}

impl Conn {
    pub fn new(url: &str) -> Self {
        Self {
            addr: authority(url).to_owned(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            consumed: 0,
            dechunked: Vec::new(),
            last: Meta::default(),
        }
    }

    /// The `Retry-After` and media type of the last response.
    pub fn last_meta(&self) -> Meta {
        self.last
    }

    /// Sends `request` and answers the response's status and body.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, &[u8]), String> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        match tokio::time::timeout(TIMEOUT, self.round_trip(request)).await {
            Ok(Ok((status, Body::Range(from, to)))) => Ok((status, &self.buf[from..to])),
            Ok(Ok((status, Body::Dechunked))) => Ok((status, &self.dechunked)),
            Ok(Err(e)) => {
                self.reset();
                Err(e)
            }
            Err(_) => {
                self.reset();
                Err(format!("no response within {TIMEOUT:?}"))
            }
        }
    }

    fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
        self.consumed = 0;
    }

    /// Opens the connection now rather than at the first request (so that
    /// no measured request pays for it).
    pub async fn connect(&mut self) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        Ok(())
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<(u16, Body), String> {
        self.connect().await?;
        self.stream_mut()?
            .write_all(request)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = Head::parse(&self.buf[..head_end])?;
        self.last = head.meta;
        if head.close {
            // Answer this one, then start afresh.
            self.consumed = usize::MAX;
        }
        let body = if head.chunked {
            let end = self.read_chunked(head_end).await?;
            self.mark(end);
            Body::Dechunked
        } else if let Some(length) = head.length {
            while self.buf.len() < head_end + length {
                self.fill().await?;
            }
            self.mark(head_end + length);
            Body::Range(head_end, head_end + length)
        } else if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
            self.mark(head_end);
            Body::Range(head_end, head_end)
        } else {
            // Delimited by the end of the connection.
            while self.fill().await.is_ok() {}
            self.consumed = usize::MAX;
            Body::Range(head_end, self.buf.len())
        };
        if self.consumed == usize::MAX {
            self.stream = None;
            self.consumed = self.buf.len();
        }
        Ok((head.status, body))
    }

    fn mark(&mut self, end: usize) {
        if self.consumed != usize::MAX {
            self.consumed = end;
        }
    }

    fn stream_mut(&mut self) -> Result<&mut TcpStream, String> {
        self.stream
            .as_mut()
            .ok_or_else(|| "not connected".to_owned())
    }

    /// Reads more into `buf`; the peer closing is an error.
    async fn fill(&mut self) -> Result<(), String> {
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let mut chunk = [0u8; 16 * 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Decodes a chunked body starting at `at` into `dechunked`; answers
    /// where it ended in `buf`.
    async fn read_chunked(&mut self, mut at: usize) -> Result<usize, String> {
        self.dechunked.clear();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[at..], b"\r\n") {
                    break at + i;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[at..line_end]).map_err(|e| e.to_string())?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
            at = line_end + 2;
            if size == 0 {
                // Trailers (none expected), then the final CRLF.
                loop {
                    if let Some(i) = find(&self.buf[at..], b"\r\n") {
                        if i == 0 {
                            return Ok(at + 2);
                        }
                        at += i + 2;
                        continue;
                    }
                    self.fill().await?;
                }
            }
            while self.buf.len() < at + size + 2 {
                self.fill().await?;
            }
            self.dechunked.extend_from_slice(&self.buf[at..at + size]);
            at += size + 2;
        }
    }
}

/// The parts of a response head the driver needs.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
    meta: Meta,
}

impl Head {
    fn parse(head: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(head).map_err(|e| format!("response head: {e}"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut parsed = Self {
            status,
            length: None,
            chunked: false,
            close: status_line.starts_with("HTTP/1.0"),
            meta: Meta::default(),
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                parsed.length = Some(value.parse().map_err(|_| format!("bad length {value:?}"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                parsed.chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                parsed.close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("retry-after") {
                parsed.meta.retry_after = !value.is_empty();
            } else if name.eq_ignore_ascii_case("content-type") {
                parsed.meta.problem = value.starts_with("application/problem+json");
            }
        }
        Ok(parsed)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a response must be to count as a success.
pub fn status_is(want: u16) -> impl Fn(u16, &[u8]) -> Result<(), String> + Clone + Send + 'static {
    move |status, body| {
        if status == want {
            Ok(())
        } else {
            let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(format!("{status}: {shown}"))
        }
    }
}

/// Runs `concurrency` workers against `url`'s host, each on its own
/// connection, sending `request(worker, iteration)` back to back until
/// `duration` has passed or `request` answers `None`; `check` judges each
/// response.
pub async fn drive<F, B, C>(
    url: &str,
    concurrency: usize,
    duration: Duration,
    request: F,
    check: C,
) -> Scenario
where
    F: Fn(usize, u64) -> Option<B> + Clone + Send + 'static,
    B: AsRef<[u8]> + Send,
    C: Fn(u16, &[u8]) -> Result<(), String> + Clone + Send + 'static,
{
    let deadline = Instant::now() + duration;
    workers(concurrency, |worker| {
        let (request, check) = (request.clone(), check.clone());
        let mut conn = Conn::new(url);
        async move {
            let mut mine = Scenario::new();
            let mut iteration = 0;
            while Instant::now() < deadline {
                let Some(bytes) = request(worker, iteration) else {
                    break;
                };
                let sent = Instant::now();
                let outcome = match conn.exchange(bytes.as_ref()).await {
                    Ok((status, body)) => check(status, body),
                    Err(e) => Err(e),
                };
                mine.record(outcome, sent.elapsed());
                iteration += 1;
            }
            mine
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request it reads with the next of
    /// `answers` (one per read, as a keep-alive server would).
    async fn serve(answers: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for answer in answers {
                let mut seen = Vec::new();
                while find(&seen, b"\r\n\r\n").is_none() {
                    let n = socket.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                }
                socket.write_all(answer).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn reads_sized_and_chunked_bodies_on_one_connection() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        ])
        .await;
        let mut conn = Conn::new(&url);
        let get = request("GET", &url, "/x", &[], b"");
        assert_eq!(conn.exchange(&get).await.unwrap(), (200, &b"hello"[..]));
        assert_eq!(conn.exchange(&get).await.unwrap(), (201, &b"abcde"[..]));
        assert_eq!(conn.exchange(&get).await.unwrap(), (204, &b""[..]));
        let (status, body) = conn.exchange(&get).await.unwrap();
        assert_eq!((status, body), (404, &b"no"[..]));
        assert!(status_is(200)(status, body).unwrap_err().starts_with("404"));
    }

    #[tokio::test]
    async fn a_closed_connection_is_an_error_not_a_hang() {
        let url = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut conn = Conn::new(&url);
        let get = request("GET", &url, "/", &[], b"");
        assert!(conn.exchange(&get).await.is_err());
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[("scope", "su_read:task a"), ("x", "1&2")]),
            "scope=su_read%3Atask+a&x=1%262"
        );
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn a_request_carries_host_headers_and_length() {
        let r = request("POST", "http://127.0.0.1:5901", "/t", &[("A", "b")], b"x=1");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /t HTTP/1.1\r\nHost: 127.0.0.1:5901\r\nA: b\r\nContent-Length: 3\r\n\r\nx=1"
        );
    }
}
