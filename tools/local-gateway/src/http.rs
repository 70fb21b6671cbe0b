//! A small HTTP/1.1 server that keeps what API Gateway passes on and common servers
//! lose: header names exactly as received (case and order), every value of a repeated
//! header, and the request target as sent (path still percent-encoded).
//!
//! Keep-alive, `Content-Length` and chunked bodies, `Expect: 100-continue`; no TLS, no
//! HTTP/2, no pipelining beyond one request at a time per connection. Limits follow API
//! Gateway's: 10 MB of body; the head is capped at 64 KiB.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// API Gateway's payload limit.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: `/path?query`, path percent-encoded.
    pub target: String,
    /// Header names as received, in order; a repeated header appears once per line.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query part of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Every value of header `name`, any case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What serves requests.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let _ = connection(stream, peer, handler, stop).await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

enum Read {
    Request(Request, bool),
    /// Answer this and close.
    Error(u16, &'static str),
    Closed,
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut stream, &mut buf, peer)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        match read {
            Read::Closed => return Ok(()),
            Read::Error(status, msg) => {
                let res = Response {
                    status,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: serde_json::json!({ "message": msg })
                        .to_string()
                        .into_bytes(),
                };
                write_response(&mut stream, &res, false, false).await?;
                return Ok(());
            }
            Read::Request(req, keep_alive) => {
                let head = req.method == "HEAD";
                let res = handler.handle(req).await;
                write_response(&mut stream, &res, keep_alive, head).await?;
                if !keep_alive {
                    return Ok(());
                }
            }
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
) -> std::io::Result<Read> {
    // The head.
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Read::Error(431, "Request Header Fields Too Large"));
        }
        if fill(stream, buf).await? == 0 {
            return Ok(Read::Closed);
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(Read::Error(400, "Bad Request")),
        Err(httparse::Error::TooManyHeaders) => {
            return Ok(Read::Error(431, "Request Header Fields Too Large"))
        }
        Err(_) => return Ok(Read::Error(400, "Bad Request")),
    }
    let method = parsed.method.unwrap_or("").to_owned();
    let target = parsed.path.unwrap_or("").to_owned();
    let version = parsed.version.unwrap_or(1);
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let Ok(v) = std::str::from_utf8(h.value) else {
            return Ok(Read::Error(400, "Bad Request"));
        };
        headers.push((h.name.to_owned(), v.trim().to_owned()));
    }
    buf.drain(..head_len);
    let get = |n: &str| {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let connection = get("connection").join(",").to_ascii_lowercase();
    let keep_alive = if version == 0 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let chunked = get("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    let lengths = get("content-length");
    if chunked && !lengths.is_empty() || lengths.len() > 1 {
        return Ok(Read::Error(400, "Bad Request"));
    }
    if get("expect")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let body = if chunked {
        match read_chunked(stream, buf).await? {
            Some(b) => b,
            None => return Ok(Read::Error(413, "Request Too Long")),
        }
    } else {
        let len = match lengths.first() {
            None => 0,
            Some(v) => match v.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return Ok(Read::Error(400, "Bad Request")),
            },
        };
        if len > MAX_BODY {
            return Ok(Read::Error(413, "Request Too Long"));
        }
        while buf.len() < len {
            if fill(stream, buf).await? == 0 {
                return Ok(Read::Closed);
            }
        }
        buf.drain(..len).collect()
    };
    Ok(Read::Request(
        Request {
            method,
            target,
            headers,
            body,
            peer,
        },
        keep_alive,
    ))
}

/// A chunked body; `None` when it is over the limit.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunked body");
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            if buf.len() > 1024 || fill(stream, buf).await? == 0 {
                return Err(bad());
            }
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| bad())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                if let Some(i) = find(buf, b"\r\n") {
                    buf.drain(..i + 2);
                    if i == 0 {
                        return Ok(Some(body));
                    }
                    continue;
                }
                if fill(stream, buf).await? == 0 {
                    return Err(bad());
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Ok(None);
        }
        while buf.len() < size + 2 {
            if fill(stream, buf).await? == 0 {
                return Err(bad());
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn write_response(
    stream: &mut TcpStream,
    res: &Response,
    keep_alive: bool,
    head: bool,
) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(res.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", res.status);
    for (k, v) in &res.headers {
        if k.eq_ignore_ascii_case("content-length")
            || k.eq_ignore_ascii_case("connection")
            || k.eq_ignore_ascii_case("transfer-encoding")
            || v.contains(['\r', '\n'])
        {
            continue;
        }
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n", res.body.len()));
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(&res.body);
    }
    stream.write_all(&bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                let names: Vec<String> = req
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                Response {
                    status: 200,
                    headers: vec![("X-Names".into(), names.join("|"))],
                    body: format!(
                        "{} {} {}",
                        req.method,
                        req.target,
                        String::from_utf8_lossy(&req.body)
                    )
                    .into_bytes(),
                }
            })
        }
    }

    async fn server() -> (SocketAddr, watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(l, Arc::new(Echo), rx));
        (addr, tx)
    }

    async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn keeps_header_case_and_repeats_and_reads_bodies() {
        let (addr, _stop) = server().await;
        let out = exchange(
            addr,
            b"POST /a%40b?x=1&x=2 HTTP/1.1\r\nHost: h\r\nX-Service-Api-Key: a\r\nx-service-api-key: b\r\nContent-Length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;ext\r\nde\r\n0\r\n\r\n",
        )
        .await;
        assert!(
            out.contains("X-Service-Api-Key=a|x-service-api-key=b"),
            "{out}"
        );
        assert!(out.contains("POST /a%40b?x=1&x=2 hello"), "{out}");
        assert!(out.contains("GET /second abcde"), "{out}");
        assert!(out.contains("Connection: close"), "{out}");
    }

    #[tokio::test]
    async fn malformed_and_oversized_requests_are_refused() {
        let (addr, _stop) = server().await;
        let out = exchange(addr, b"NOT HTTP\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        let out = exchange(
            addr,
            format!(
                "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY + 1
            )
            .as_bytes(),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
        let out = exchange(
            addr,
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        let out = exchange(
            addr,
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"),
            "{out}"
        );
    }
}
