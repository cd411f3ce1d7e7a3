//! Push to a Prometheus Pushgateway: the same families as the scrape endpoint, in the text
//! format, `PUT` to `/metrics/job/<job>[/<key>/<value>...]` on an interval and once at the
//! end, optionally deleted when the job ends. For jobs too short to be scraped.

use std::time::Duration;

use hyper::Method;

use super::http_client;
use crate::config::PushgatewayConfig;
use crate::prometheus::{encode_text, TEXT_CONTENT_TYPE};
use crate::registry::Registry;

/// Where one job's metrics are pushed.
pub struct Pushgateway {
    url: String,
    timeout: Duration,
}

/// Encodes a grouping key path segment: plain when it is safe in a URL path, else the
/// Pushgateway's `@base64` form (URL-safe alphabet).
fn segment(key: &str, value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        format!("/{key}/{value}")
    } else {
        format!("/{key}@base64/{}", base64_url(value.as_bytes()))
    }
}

fn base64_url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    if out.is_empty() {
        out.push('=');
    }
    out
}

impl Pushgateway {
    /// The gateway group of `job_name` (or `jobName` from the configuration).
    pub fn new(cfg: &PushgatewayConfig, job_name: &str) -> Self {
        let mut url = format!("{}/metrics", cfg.host_url);
        url.push_str(&segment("job", cfg.job_name.as_deref().unwrap_or(job_name)));
        for (k, v) in &cfg.grouping_key {
            url.push_str(&segment(k, v));
        }
        Self {
            url,
            timeout: Duration::from_secs(10),
        }
    }

    /// The URL of the group.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the group's metrics with the registry's current ones.
    pub async fn push(&self, registry: &Registry) -> Result<(), String> {
        let registry = registry.clone();
        let body =
            tokio::task::spawn_blocking(move || encode_text(&registry.snapshot()).into_bytes())
                .await
                .map_err(|e| format!("rendering metrics failed: {e}"))?;
        http_client::send_expecting_success(
            Method::PUT,
            &self.url,
            TEXT_CONTENT_TYPE,
            body,
            self.timeout,
        )
        .await
    }

    /// Deletes the group.
    pub async fn delete(&self) -> Result<(), String> {
        http_client::send_expecting_success(
            Method::DELETE,
            &self.url,
            TEXT_CONTENT_TYPE,
            Vec::new(),
            self.timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_segments() {
        assert_eq!(segment("job", "word_count-1.2"), "/job/word_count-1.2");
        assert_eq!(segment("job", "a/b"), "/job@base64/YS9i");
        assert_eq!(segment("job", ""), "/job@base64/=");
        assert_eq!(base64_url(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
    }
}
