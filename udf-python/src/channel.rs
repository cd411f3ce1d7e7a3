//! The worker channel's frames: what the engine and a Python worker process say to each
//! other over their Unix socket.
//!
//! Every frame is `"WF"`, a protocol version byte, a tag byte, the body length (u32, little
//! endian) and the body. Bodies are built from little-endian integers, length-prefixed UTF-8
//! strings and byte strings; record batches travel as Arrow IPC streams, metric updates in
//! `weir-metrics`' own encoding ([`weir_metrics::protocol::UpdateBatch`]). A result frame
//! carries, in the same frame, the metric updates made while computing it, so a batch's
//! output and its metrics are applied together or not at all.
//!
//! Decoding never panics: a short, oversized or malformed frame is an error that names the
//! frame and the byte offset.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;

use weir_engine::error::{EngineError, Result};

/// Frame magic.
pub const MAGIC: &[u8; 2] = b"WF";
/// Protocol version spoken by this build.
pub const VERSION: u8 = 2;
/// Bytes before a frame's body.
pub const HEADER_LEN: usize = 8;
/// Largest body accepted by default (a result of many wide rows still fits).
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// A function the worker runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    /// The name it is called by (plans, errors, metrics).
    pub name: String,
    /// The pickled function (cloudpickle).
    pub payload: Vec<u8>,
    /// Column indexes of its arguments in the input batches.
    pub args: Vec<u32>,
    /// Its result type as a Flink type name (`BIGINT`, `STRING`, ...).
    pub result_type: String,
}

/// What the engine tells a worker first.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    pub job: String,
    pub operator: String,
    pub subtask: u32,
    pub parallelism: u32,
    /// How many times this subtask's worker has been started before.
    pub attempt: u32,
    pub config: BTreeMap<String, String>,
    pub functions: Vec<FunctionSpec>,
}

/// Log levels, as Python's `logging` numbers them.
pub type LogLevel = u8;

/// One frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// Worker -> engine, on connecting: the protocol version it speaks and its process id.
    Hello { version: u8, pid: u32 },
    /// Engine -> worker: who it is and what to run.
    Handshake(Handshake),
    /// Worker -> engine: functions unpickled and opened; ready for input.
    Ready,
    /// Engine -> worker: a bundle of argument rows.
    Input { bundle: u64, batch: RecordBatch },
    /// Worker -> engine: one result column per function, and the metric updates made while
    /// computing them (already encoded), plus rows skipped by `python.udf.on-error=skip`.
    /// When `skipped > 0` the batch has one more column, a boolean per input row that is
    /// true for the rows kept (the result columns hold NULL in the rows skipped).
    Result {
        bundle: u64,
        batch: RecordBatch,
        metrics: Vec<u8>,
        skipped: u32,
        /// Time the worker spent on the bundle (ns).
        worker_nanos: u64,
    },
    /// Worker -> engine: metric updates outside a bundle (idle flushes, gauges re-read).
    Metrics { metrics: Vec<u8> },
    /// Worker -> engine: a log record or printed text from a function.
    Log {
        level: LogLevel,
        logger: String,
        message: String,
    },
    /// Worker -> engine: a function raised; the job fails with this.
    Error {
        bundle: u64,
        function: String,
        exception: String,
        message: String,
        traceback: String,
        /// The input row, as text.
        row: String,
    },
    /// Either way: still alive.
    Heartbeat { millis: u64 },
    /// Engine -> worker: finish the open bundle now.
    Flush,
    /// Engine -> worker: close the functions and exit.
    Close,
    /// Engine -> worker: evaluate this bundle (sent next) one row at a time and report each
    /// row before evaluating it. Sent for the first bundle replayed after a worker died, so
    /// that a row that kills the worker is known by the next death.
    Trace { bundle: u64 },
    /// Worker -> engine: about to evaluate row `row` of a traced bundle with function
    /// `function` (its index in the handshake).
    Progress {
        bundle: u64,
        function: u32,
        row: u32,
    },
}

impl Frame {
    fn tag(&self) -> u8 {
        match self {
            Frame::Hello { .. } => 1,
            Frame::Handshake(_) => 2,
            Frame::Ready => 3,
            Frame::Input { .. } => 4,
            Frame::Result { .. } => 5,
            Frame::Metrics { .. } => 6,
            Frame::Log { .. } => 7,
            Frame::Error { .. } => 8,
            Frame::Heartbeat { .. } => 9,
            Frame::Flush => 10,
            Frame::Close => 11,
            Frame::Trace { .. } => 12,
            Frame::Progress { .. } => 13,
        }
    }

    /// Its name in errors.
    pub fn kind(&self) -> &'static str {
        tag_name(self.tag())
    }

    /// The frame's bytes, header included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Frame::Hello { version, pid } => {
                w.u8(*version);
                w.u32(*pid);
            }
            Frame::Handshake(h) => {
                w.str(&h.job);
                w.str(&h.operator);
                w.u32(h.subtask);
                w.u32(h.parallelism);
                w.u32(h.attempt);
                w.u32(h.config.len() as u32);
                for (k, v) in &h.config {
                    w.str(k);
                    w.str(v);
                }
                w.u32(h.functions.len() as u32);
                for f in &h.functions {
                    w.str(&f.name);
                    w.bytes(&f.payload);
                    w.u32(f.args.len() as u32);
                    for a in &f.args {
                        w.u32(*a);
                    }
                    w.str(&f.result_type);
                }
            }
            Frame::Ready | Frame::Flush | Frame::Close => {}
            Frame::Input { bundle, batch } => {
                w.u64(*bundle);
                w.bytes(&batch_to_ipc(batch)?);
            }
            Frame::Result {
                bundle,
                batch,
                metrics,
                skipped,
                worker_nanos,
            } => {
                w.u64(*bundle);
                w.bytes(&batch_to_ipc(batch)?);
                w.bytes(metrics);
                w.u32(*skipped);
                w.u64(*worker_nanos);
            }
            Frame::Metrics { metrics } => w.bytes(metrics),
            Frame::Log {
                level,
                logger,
                message,
            } => {
                w.u8(*level);
                w.str(logger);
                w.str(message);
            }
            Frame::Error {
                bundle,
                function,
                exception,
                message,
                traceback,
                row,
            } => {
                w.u64(*bundle);
                for s in [function, exception, message, traceback, row] {
                    w.str(s);
                }
            }
            Frame::Heartbeat { millis } => w.u64(*millis),
            Frame::Trace { bundle } => w.u64(*bundle),
            Frame::Progress {
                bundle,
                function,
                row,
            } => {
                w.u64(*bundle);
                w.u32(*function);
                w.u32(*row);
            }
        }
        let body = w.0;
        let len = u32::try_from(body.len()).map_err(|_| {
            EngineError::Execution(format!(
                "a {} frame of {} bytes is too large",
                self.kind(),
                body.len()
            ))
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.tag());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads a header: the tag and body length, checked against `max_body`.
    pub fn decode_header(h: &[u8], max_body: usize) -> Result<(u8, usize)> {
        if h.len() < HEADER_LEN {
            return Err(frame_err(
                "header",
                0,
                format!("{} bytes, a header has {HEADER_LEN}", h.len()),
            ));
        }
        if &h[0..2] != MAGIC {
            return Err(frame_err(
                "header",
                0,
                format!(
                    "bad magic {:02x}{:02x}: not a weir worker frame",
                    h[0], h[1]
                ),
            ));
        }
        if h[2] != VERSION {
            return Err(frame_err(
                "header",
                2,
                format!("protocol version {} but this engine speaks {VERSION}; the worker and the engine come from different weir builds", h[2]),
            ));
        }
        let tag = h[3];
        if !(1..=LAST_TAG).contains(&tag) {
            return Err(frame_err("header", 3, format!("unknown frame tag {tag}")));
        }
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if len > max_body {
            return Err(frame_err(
                tag_name(tag),
                4,
                format!("body of {len} bytes is over the limit of {max_body}"),
            ));
        }
        Ok((tag, len))
    }

    /// A frame from its header's tag and its body.
    pub fn decode_body(tag: u8, body: &[u8]) -> Result<Frame> {
        let mut r = Reader {
            b: body,
            at: 0,
            frame: tag_name(tag),
        };
        let f = match tag {
            1 => Frame::Hello {
                version: r.u8()?,
                pid: r.u32()?,
            },
            2 => {
                let job = r.str()?;
                let operator = r.str()?;
                let subtask = r.u32()?;
                let parallelism = r.u32()?;
                let attempt = r.u32()?;
                let n = r.count(8)?;
                let mut config = BTreeMap::new();
                for _ in 0..n {
                    let k = r.str()?;
                    config.insert(k, r.str()?);
                }
                let n = r.count(16)?;
                let mut functions = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.str()?;
                    let payload = r.bytes()?.to_vec();
                    let na = r.count(4)?;
                    let mut args = Vec::with_capacity(na);
                    for _ in 0..na {
                        args.push(r.u32()?);
                    }
                    functions.push(FunctionSpec {
                        name,
                        payload,
                        args,
                        result_type: r.str()?,
                    });
                }
                Frame::Handshake(Handshake {
                    job,
                    operator,
                    subtask,
                    parallelism,
                    attempt,
                    config,
                    functions,
                })
            }
            3 => Frame::Ready,
            4 => {
                let bundle = r.u64()?;
                let at = r.at;
                let batch = ipc_to_batch(r.bytes()?).map_err(|e| frame_err(r.frame, at, e))?;
                Frame::Input { bundle, batch }
            }
            5 => {
                let bundle = r.u64()?;
                let at = r.at;
                let batch = ipc_to_batch(r.bytes()?).map_err(|e| frame_err(r.frame, at, e))?;
                let metrics = r.bytes()?.to_vec();
                Frame::Result {
                    bundle,
                    batch,
                    metrics,
                    skipped: r.u32()?,
                    worker_nanos: r.u64()?,
                }
            }
            6 => Frame::Metrics {
                metrics: r.bytes()?.to_vec(),
            },
            7 => Frame::Log {
                level: r.u8()?,
                logger: r.str()?,
                message: r.str()?,
            },
            8 => Frame::Error {
                bundle: r.u64()?,
                function: r.str()?,
                exception: r.str()?,
                message: r.str()?,
                traceback: r.str()?,
                row: r.str()?,
            },
            9 => Frame::Heartbeat { millis: r.u64()? },
            10 => Frame::Flush,
            11 => Frame::Close,
            12 => Frame::Trace { bundle: r.u64()? },
            13 => Frame::Progress {
                bundle: r.u64()?,
                function: r.u32()?,
                row: r.u32()?,
            },
            t => return Err(frame_err("header", 3, format!("unknown frame tag {t}"))),
        };
        if r.at != body.len() {
            return Err(frame_err(
                r.frame,
                r.at,
                format!("{} bytes left over after the frame", body.len() - r.at),
            ));
        }
        Ok(f)
    }

    /// Decodes one whole frame (header and body) from `bytes`; returns it and the bytes used.
    pub fn decode(bytes: &[u8], max_body: usize) -> Result<(Frame, usize)> {
        let (tag, len) = Frame::decode_header(bytes, max_body)?;
        let body = bytes.get(HEADER_LEN..HEADER_LEN + len).ok_or_else(|| {
            frame_err(
                tag_name(tag),
                HEADER_LEN,
                format!(
                    "body of {len} bytes announced, {} present",
                    bytes.len().saturating_sub(HEADER_LEN)
                ),
            )
        })?;
        Ok((Frame::decode_body(tag, body)?, HEADER_LEN + len))
    }
}

const LAST_TAG: u8 = 13;

fn tag_name(tag: u8) -> &'static str {
    match tag {
        1 => "hello",
        2 => "handshake",
        3 => "ready",
        4 => "input",
        5 => "result",
        6 => "metrics",
        7 => "log",
        8 => "error",
        9 => "heartbeat",
        10 => "flush",
        11 => "close",
        12 => "trace",
        13 => "progress",
        _ => "unknown",
    }
}

fn frame_err(frame: &str, offset: usize, detail: impl std::fmt::Display) -> EngineError {
    EngineError::Execution(format!(
        "malformed {frame} frame on the worker channel at byte {offset}: {detail}"
    ))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    frame: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                frame_err(
                    self.frame,
                    self.at,
                    format!("{what} needs {n} bytes, {} left", self.b.len() - self.at),
                )
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1, "a byte")?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4, "a u32")?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8, "a u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items of at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let at = self.at;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.b.len() - self.at {
            return Err(frame_err(
                self.frame,
                at,
                format!(
                    "a count of {n} items cannot fit in the {} bytes left",
                    self.b.len() - self.at
                ),
            ));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n, "a byte string")
    }
    fn str(&mut self) -> Result<String> {
        let at = self.at;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|e| frame_err(self.frame, at, format!("a string is not UTF-8: {e}")))
    }
}

/// Reads the next frame and how many bytes it took; `Ok(None)` when the peer closed the
/// channel between frames.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    max_body: usize,
) -> Result<Option<(Frame, usize)>> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r
            .read(&mut header[got..])
            .await
            .map_err(|e| EngineError::Execution(format!("reading the worker channel: {e}")))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(frame_err(
                "header",
                got,
                "the peer closed the channel in the middle of a frame header",
            ));
        }
        got += n;
    }
    let (tag, len) = Frame::decode_header(&header, max_body)?;
    // The body is read as it arrives: memory follows the bytes really sent, not the length
    // a header announces (a peer that announces 200 MB and stalls costs nothing).
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    (&mut *r)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| {
            frame_err(
                tag_name(tag),
                HEADER_LEN,
                format!("reading a {len}-byte body: {e}"),
            )
        })?;
    if body.len() < len {
        return Err(frame_err(
            tag_name(tag),
            HEADER_LEN,
            format!(
                "the peer closed the channel in the middle of a {len}-byte body ({} bytes came)",
                body.len()
            ),
        ));
    }
    Frame::decode_body(tag, &body).map(|f| Some((f, HEADER_LEN + len)))
}

/// Bodies are read in steps of at most this many bytes of memory reserved ahead.
const READ_CHUNK: usize = 1 << 20;

/// Writes one frame; returns its size in bytes.
pub async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
) -> Result<usize> {
    use tokio::io::AsyncWriteExt;
    let bytes = frame.encode()?;
    w.write_all(&bytes).await.map_err(|e| {
        EngineError::Execution(format!(
            "writing a {} frame to the worker channel: {e}",
            frame.kind()
        ))
    })?;
    Ok(bytes.len())
}

/// A record batch as an Arrow IPC stream.
pub fn batch_to_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, batch.schema_ref())
            .map_err(|source| EngineError::Arrow {
                context: "encoding a batch for a worker".into(),
                source,
            })?;
        w.write(batch).map_err(|source| EngineError::Arrow {
            context: "encoding a batch for a worker".into(),
            source,
        })?;
        w.finish().map_err(|source| EngineError::Arrow {
            context: "encoding a batch for a worker".into(),
            source,
        })?;
    }
    Ok(out)
}

/// The one record batch of an Arrow IPC stream. Arrow's IPC reader can panic on corrupted
/// bytes (a buffer shorter than its metadata says); such a panic is caught here and becomes
/// an error, so nothing a worker sends can bring the engine down.
pub fn ipc_to_batch(bytes: &[u8]) -> std::result::Result<RecordBatch, String> {
    match std::panic::catch_unwind(|| read_ipc(bytes)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            Err(format!("corrupted Arrow IPC data ({what})"))
        }
    }
}

/// Checks an IPC stream's framing before Arrow reads it: every message's metadata is a valid
/// flatbuffer inside the bytes, every body and buffer lies inside the bytes, row counts are
/// bounded. Arrow's reader trusts these and would allocate what a corrupted length says.
fn check_ipc(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut at = 0usize;
    let word = |at: usize| -> std::result::Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| format!("the stream ends inside a message header at byte {at}"))
    };
    while at < bytes.len() {
        let mut len = word(at)?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let len = len as usize;
        let meta = bytes.get(at..at.saturating_add(len)).ok_or_else(|| {
            format!("message metadata of {len} bytes at byte {at} runs past the end")
        })?;
        at += len;
        let msg =
            arrow_ipc::root_as_message(meta).map_err(|e| format!("bad message metadata: {e}"))?;
        let body =
            usize::try_from(msg.bodyLength()).map_err(|_| "negative body length".to_string())?;
        if body > bytes.len() - at {
            return Err(format!(
                "a message body of {body} bytes at byte {at} runs past the end"
            ));
        }
        if let Some(rb) = msg.header_as_record_batch() {
            let rows = rb.length();
            if !(0..=(1 << 31)).contains(&rows) {
                return Err(format!("a batch of {rows} rows"));
            }
            for n in rb.nodes().iter().flatten() {
                if n.length() < 0
                    || n.length() > (body as i64 + 64) * 8
                    || n.null_count() < 0
                    || n.null_count() > n.length()
                {
                    return Err(format!(
                        "a column of {} rows and {} nulls in {body} bytes",
                        n.length(),
                        n.null_count()
                    ));
                }
            }
            for b in rb.buffers().iter().flatten() {
                let end = b.offset().checked_add(b.length());
                if b.offset() < 0 || b.length() < 0 || end.is_none_or(|e| e > body as i64) {
                    return Err(format!(
                        "a buffer at {} of {} bytes outside a body of {body}",
                        b.offset(),
                        b.length()
                    ));
                }
            }
        }
        at += body;
    }
    Ok(())
}

fn read_ipc(bytes: &[u8]) -> std::result::Result<RecordBatch, String> {
    check_ipc(bytes)?;
    let mut r = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let schema = r.schema();
    let batch = match r.next() {
        Some(b) => b.map_err(|e| format!("bad Arrow IPC batch: {e}"))?,
        None => RecordBatch::new_empty(Arc::clone(&schema)),
    };
    if r.next().is_some() {
        return Err("more than one batch in an Arrow IPC stream".into());
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("x", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec!["a", "b", "ü"])),
            ],
        )
        .unwrap()
    }

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Hello {
                version: VERSION,
                pid: 4242,
            },
            Frame::Handshake(Handshake {
                job: "j".into(),
                operator: "PythonCalc[f]".into(),
                subtask: 1,
                parallelism: 2,
                attempt: 3,
                config: [(
                    "python.fn-execution.bundle.size".to_string(),
                    "1000".to_string(),
                )]
                .into_iter()
                .collect(),
                functions: vec![FunctionSpec {
                    name: "f".into(),
                    payload: vec![0x80, 5, 0],
                    args: vec![0, 1],
                    result_type: "BIGINT".into(),
                }],
            }),
            Frame::Ready,
            Frame::Input {
                bundle: 7,
                batch: batch(),
            },
            Frame::Result {
                bundle: 7,
                batch: batch(),
                metrics: vec![1, 2, 3],
                skipped: 1,
                worker_nanos: 12_345,
            },
            Frame::Metrics {
                metrics: vec![9; 10],
            },
            Frame::Log {
                level: 20,
                logger: "udf".into(),
                message: "hello".into(),
            },
            Frame::Error {
                bundle: 7,
                function: "f".into(),
                exception: "ValueError".into(),
                message: "bad".into(),
                traceback: "Traceback ...".into(),
                row: "Row(x=1)".into(),
            },
            Frame::Heartbeat { millis: 123 },
            Frame::Flush,
            Frame::Close,
            Frame::Trace { bundle: 7 },
            Frame::Progress {
                bundle: 7,
                function: 1,
                row: 999,
            },
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for f in frames() {
            let bytes = f.encode().unwrap();
            let (back, used) = Frame::decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back.encode().unwrap(), bytes, "{}", f.kind());
        }
    }

    #[test]
    fn malformed_frames_are_errors_that_say_where() {
        let good = Frame::Log {
            level: 20,
            logger: "udf".into(),
            message: "hello".into(),
        }
        .encode()
        .unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"XX\x02\x07\0\0\0\0".to_vec(), "malformed header frame on the worker channel at byte 0: bad magic 5858: not a weir worker frame"),
            (b"WF\x09\x07\0\0\0\0".to_vec(), "malformed header frame on the worker channel at byte 2: protocol version 9 but this engine speaks 2; the worker and the engine come from different weir builds"),
            (b"WF\x02\x63\0\0\0\0".to_vec(), "malformed header frame on the worker channel at byte 3: unknown frame tag 99"),
            (b"WF\x02\x07\xff\xff\xff\x7f".to_vec(), "malformed log frame on the worker channel at byte 4: body of 2147483647 bytes is over the limit of 268435456"),
            (good[..good.len() - 2].to_vec(), "malformed log frame on the worker channel at byte 8: body of 17 bytes announced, 15 present"),
            ({
                let mut b = good.clone();
                b[HEADER_LEN + 1] = 200; // the logger's length
                b
            }, "malformed log frame on the worker channel at byte 5: a byte string needs 200 bytes, 12 left"),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                Frame::decode(&bytes, DEFAULT_MAX_FRAME)
                    .unwrap_err()
                    .to_string(),
                want
            );
        }
        let mut bad_ipc = Frame::Input {
            bundle: 1,
            batch: batch(),
        }
        .encode()
        .unwrap();
        let n = bad_ipc.len();
        bad_ipc[n - 20] ^= 0xff;
        bad_ipc[HEADER_LEN + 14] ^= 0xff;
        let e = Frame::decode(&bad_ipc, DEFAULT_MAX_FRAME)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("malformed input frame on the worker channel at byte 8: "),
            "{e}"
        );
    }

    #[tokio::test]
    async fn frames_cross_a_unix_socket_and_a_cut_frame_is_an_error() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let sent = frames();
        let n = sent.len();
        let writer = tokio::spawn(async move {
            for f in &sent {
                write_frame(&mut a, f).await.unwrap();
            }
            // Half a frame, then the peer goes away (a worker killed mid-write).
            let bytes = Frame::Heartbeat { millis: 1 }.encode().unwrap();
            use tokio::io::AsyncWriteExt;
            a.write_all(&bytes[..HEADER_LEN + 3]).await.unwrap();
        });
        let mut kinds = Vec::new();
        for _ in 0..n {
            kinds.push(
                read_frame(&mut b, DEFAULT_MAX_FRAME)
                    .await
                    .unwrap()
                    .unwrap()
                    .0
                    .kind(),
            );
        }
        writer.await.unwrap();
        assert_eq!(
            kinds,
            [
                "hello",
                "handshake",
                "ready",
                "input",
                "result",
                "metrics",
                "log",
                "error",
                "heartbeat",
                "flush",
                "close",
                "trace",
                "progress"
            ]
        );
        let e = read_frame(&mut b, DEFAULT_MAX_FRAME)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("malformed heartbeat frame on the worker channel at byte 8: the peer closed the channel in the middle of a 8-byte body"), "{e}");
        // A clean close between frames is the end, not an error.
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        drop(a);
        assert!(read_frame(&mut b, DEFAULT_MAX_FRAME)
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn random_and_corrupted_bytes_never_panic() {
        use proptest::prelude::*;
        let all: Vec<Vec<u8>> = frames().iter().map(|f| f.encode().unwrap()).collect();
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 2000,
            ..Default::default()
        });
        runner
            .run(
                &(
                    0..all.len(),
                    proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                    any::<usize>(),
                ),
                |(which, flips, cut)| {
                    let mut b = all[which].clone();
                    for (at, v) in flips {
                        let n = b.len();
                        b[at % n] = v;
                    }
                    let cut = cut % (b.len() + 1);
                    let _ = Frame::decode(&b[..cut], DEFAULT_MAX_FRAME);
                    let _ = Frame::decode(&b, 1 << 16);
                    Ok(())
                },
            )
            .unwrap();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..512), |b| {
                let _ = Frame::decode(&b, DEFAULT_MAX_FRAME);
                Ok(())
            })
            .unwrap();
    }
}
