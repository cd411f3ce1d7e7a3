//! A minimal HTTP/1.1 client for pushing to a Pushgateway or an OTLP/HTTP receiver: one
//! request per connection, plain `http://` only, every step under a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A parsed `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Url {
    pub authority: String,
    pub path: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            authority,
            path: path.to_string(),
        })
    }
}

/// Sends one request and returns the status and body; any failure is a message saying where.
pub(crate) async fn send(
    method: Method,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let u = Url::parse(url)?;
    let work = async {
        let stream = TcpStream::connect(&u.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", u.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", u.authority))?;
        let conn = tokio::spawn(conn);
        let req = Request::builder()
            .method(method.clone())
            .uri(&u.path)
            .header(hyper::header::HOST, &u.authority)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(
                hyper::header::USER_AGENT,
                concat!("weir/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build request for {url}: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {url} failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {url} failed: {e}"))?
            .to_bytes();
        conn.abort();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{method} {url} timed out after {timeout:?}"))?
}

/// Sends one request and turns any answer but 2xx into an error quoting the answer.
pub(crate) async fn send_expecting_success(
    method: Method,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), String> {
    let (status, answer) = send(method.clone(), url, content_type, body, timeout).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "{method} {url} answered {status}: {}",
            String::from_utf8_lossy(&answer).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://localhost:4318/v1/metrics").unwrap(),
            Url {
                authority: "localhost:4318".into(),
                path: "/v1/metrics".into()
            }
        );
        assert_eq!(Url::parse("http://gw").unwrap().authority, "gw:80");
        assert!(Url::parse("https://x").is_err());
    }
}
