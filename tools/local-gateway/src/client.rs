//! A minimal HTTP/1.1 client over one keep-alive connection, for tests and the load
//! generator: sends headers exactly as given (names, case, repeats) and reads
//! `Content-Length` or chunked responses.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::Response;

pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    timeout: Duration,
}

fn err(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            addr,
            buf: Vec::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends one request; `Host` is added when `headers` has none.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut out = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            out.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await?;
        tokio::time::timeout(self.timeout, self.read_response(method == "HEAD"))
            .await
            .map_err(|_| err("timed out waiting for the response"))?
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self, head_only: bool) -> std::io::Result<Response> {
        loop {
            let (status, headers, head_len) = {
                let mut slots = [httparse::EMPTY_HEADER; 64];
                let mut r = httparse::Response::new(&mut slots);
                match r.parse(&self.buf).map_err(|_| err("bad response"))? {
                    httparse::Status::Partial => None,
                    httparse::Status::Complete(n) => Some((
                        r.code.unwrap_or(0),
                        r.headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect::<Vec<_>>(),
                        n,
                    )),
                }
            }
            .map_or((0, Vec::new(), 0), |x| x);
            if head_len == 0 {
                self.fill().await?;
                continue;
            }
            self.buf.drain(..head_len);
            if status == 100 {
                continue;
            }
            let get = |n: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            let body = if head_only {
                Vec::new()
            } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                self.read_chunked().await?
            } else {
                let len: usize = get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < len {
                    self.fill().await?;
                }
                self.buf.drain(..len).collect()
            };
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
    }

    async fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.buf[..line_end])
                    .map_err(|_| err("bad chunk"))?
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| err("bad chunk size"))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            if size == 0 {
                self.buf.drain(..2);
                return Ok(body);
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

/// One request on a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    Conn::connect(addr)
        .await?
        .send(method, target, headers, body)
        .await
}
