//! Helpers for weir's end-to-end tests: free ports, child processes that die with the test,
//! a real Prometheus server started with a generated configuration, and a small HTTP client.
//!
//! Tests that need an external program fail with an instruction to install it (the README's
//! test command installs them all); they never skip silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "weir-e2e-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Panics with an install hint when `program` is not on the PATH.
pub fn require(program: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: run `apt-get install {debian_package}` (the README's test command does)"
    );
}

/// Builds an example of a workspace package and returns its path.
pub fn build_example(package: &str, example: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--example", example])
        .current_dir(workspace_root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "building example {example} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("examples").join(example)
}

/// Builds a binary of the workspace (debug profile) and returns its path.
pub fn build_bin(package: &str, bin: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {bin} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(bin)
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with stdout piped (see [`Proc::stdout_lines`]) and stderr inherited.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// Takes the stdout reader.
    pub fn stdout_lines(&mut self) -> BufReader<ChildStdout> {
        BufReader::new(self.child.stdout.take().expect("stdout is piped"))
    }

    /// Waits for the process to exit by itself, at most `limit` (then it is killed and the
    /// test fails): a guard against hangs, not a timing assertion.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("{} did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines until one satisfies `pred`, returning it (panics at end of output).
pub fn read_until(lines: &mut impl BufRead, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).expect("read child output");
        assert!(n > 0, "output ended before {what}");
        if pred(line.trim_end()) {
            return line.trim_end().to_string();
        }
    }
}

/// A plain HTTP/1.1 request; returns status and body, or what failed.
pub fn try_http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    ))
}

/// [`try_http`] that fails the test on a transport error.
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    try_http(method, addr, path, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET` shorthand.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http("GET", addr, path, &[], b"")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool check metrics` on `text`; returns its exit code and what it printed.
pub fn promtool_check(text: &str) -> (i32, String) {
    require("promtool", "prometheus");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let mut said = String::from_utf8_lossy(&out.stdout).to_string();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), said)
}

/// A real Prometheus server scraping the given targets every 500 ms.
pub struct Prometheus {
    pub addr: String,
    _proc: Proc,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` with a generated configuration and waits until it is ready.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        Self::start_with(targets, &[])
    }

    /// [`Prometheus::start`] with more command-line flags, such as
    /// `--enable-feature=native-histograms` (which makes it scrape the protobuf format).
    pub fn start_with(targets: &[SocketAddr], flags: &[&str]) -> Prometheus {
        require("prometheus", "prometheus");
        let dir = temp_dir("prometheus");
        let port = free_port();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        let proc = Proc::spawn(
            "prometheus",
            Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .args(flags)
                .stdout(Stdio::null()),
        );
        let addr = format!("127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if matches!(try_http("GET", &addr, "/-/ready", &[], b""), Ok((200, _))) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "prometheus did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus {
            addr,
            _proc: proc,
            dir,
        }
    }

    /// Runs an instant query; returns (labels, value) for each result series.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let (status, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", urlencode(expr)),
        );
        assert_eq!(status, 200, "query {expr} failed: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        v["data"]["result"]
            .as_array()
            .expect("vector result")
            .iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// The single value of `expr`, waiting (up to `limit`) until it equals `want`; returns the
    /// last value seen so the caller's assertion shows it.
    pub fn wait_for_value(&self, expr: &str, want: f64, limit: Duration) -> Option<f64> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < limit {
            let r = self.query(expr);
            last = r.first().map(|x| x.1);
            if r.len() == 1 && r[0].1 == want {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
