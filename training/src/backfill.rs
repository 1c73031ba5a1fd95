//! `micro-train backfill`: streams a history file (the years of interactions
//! a team adopting Micro already has) into a running `micro-serve` through
//! the ordinary ingest API, so history takes the same validation,
//! deduplication, storage and profile path as live traffic, with no side
//! door into the database to keep in step with the server.
//!
//! A reader thread validates rows (the one path of
//! [`visit_interactions`]) and writes each valid one straight into an NDJSON
//! batch body; a bounded channel hands ready batches to a few concurrent
//! requests, so reading, serialising and sending overlap and the server
//! stays the bottleneck. Batches are answered out of order; the state file
//! records the row up to which *every* batch has been acknowledged, so an
//! interrupted run goes on where it stopped. Resending a batch is harmless
//! (the server stores an id once), so the recorded position only has to
//! be behind the truth, never ahead of it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use features::interaction::{format_rfc3339, CheckedInteraction, RawInteraction};
use features::validation::{ProblemSummary, ValidationErrors};
use features_batch::io::{
    describe_group, read_users, thousands, visit_interactions, Format, LoadReport,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::feature_table::print_report;

/// Lines per request unless told otherwise: about 1.5 MB of NDJSON, well
/// under the server's body limit, and large enough that per-request costs
/// vanish.
pub const DEFAULT_BATCH: usize = 5_000;
/// Requests in flight unless told otherwise.
pub const DEFAULT_IN_FLIGHT: usize = 4;
/// Failed attempts (connection errors, 5xx) per request before giving up.
pub const DEFAULT_RETRIES: u32 = 10;
/// Registrations are one small request each: more of them in flight hide
/// the round trips.
const USERS_IN_FLIGHT: usize = 16;
/// 429/503 answers taken per request before giving up. An overloaded server
/// is working as designed (it asks for a pause instead of growing its
/// queue), so these get far more patience than failures.
const MAX_OVERLOADED: u32 = 120;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Least time between writes of the state file: a crash loses at most this
/// much progress (those batches are resent, as duplicates).
const SAVE_EVERY: Duration = Duration::from_millis(250);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes of the input hashed into its identity.
const HEAD_BYTES: u64 = 1 << 20;
const NDJSON: &str = "application/x-ndjson";

/// What `micro-train backfill` was asked to do.
#[derive(Clone, Debug)]
pub struct BackfillArgs {
    /// Interaction history (Parquet, CSV or NDJSON, by extension).
    pub interactions: PathBuf,
    /// Users to register first (columns as `generate` writes `users.parquet`).
    pub users: Option<PathBuf>,
    /// Base address of `micro-serve`, e.g. `http://127.0.0.1:8080`.
    pub api: String,
    /// API key, sent as a bearer token.
    pub key: String,
    /// Lines per request.
    pub batch: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Failed attempts per request before giving up.
    pub retries: u32,
    /// State file; default `<interactions>.backfill.json`.
    pub state: Option<PathBuf>,
    /// Ignore an existing state file and send the file from the start.
    pub restart: bool,
    /// Show progress bars on stderr.
    pub progress: bool,
}

/// Rows sent and what the server said about them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// Which file a state belongs to: a state is only used for the file it was
/// written for, unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdentity {
    /// For people reading the state; a moved file is still the same file.
    pub path: String,
    pub size: u64,
    pub modified_unix_nanos: u64,
    /// SHA-256 of the first MiB: catches a file rewritten within the
    /// clock's resolution.
    pub head_sha256: String,
}

impl FileIdentity {
    pub fn of(path: &Path) -> Result<FileIdentity> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let modified_unix_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut head = Vec::new();
        file.take(HEAD_BYTES)
            .read_to_end(&mut head)
            .with_context(|| format!("reading {}", path.display()))?;
        let head_sha256 = Sha256::digest(&head)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(FileIdentity {
            path: path.display().to_string(),
            size: meta.len(),
            modified_unix_nanos,
            head_sha256,
        })
    }

    /// How `now` differs from the file this identity was taken of.
    pub fn changes(&self, now: &FileIdentity) -> Vec<&'static str> {
        let mut changes = Vec::new();
        if self.size != now.size {
            changes.push("size");
        }
        if self.modified_unix_nanos != now.modified_unix_nanos {
            changes.push("modification time");
        }
        if self.head_sha256 != now.head_sha256 {
            changes.push("content");
        }
        changes
    }
}

/// The users of a `--users` file, all answered by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersDone {
    pub input: FileIdentity,
    pub registered: u64,
    pub already_registered: u64,
    pub rejected: u64,
}

/// The state file: how far a backfill of one input file has got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillState {
    pub input: FileIdentity,
    /// Every valid row numbered up to this one (the numbering of
    /// [`visit_interactions`]) has been acknowledged by the server.
    pub rows_done: usize,
    /// Every row of the file has been acknowledged.
    pub complete: bool,
    /// What the server said about the rows up to `rows_done`, over all runs.
    pub acknowledged: Totals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UsersDone>,
    pub updated_at: String,
}

impl BackfillState {
    pub fn new(input: FileIdentity) -> BackfillState {
        BackfillState {
            input,
            rows_done: 0,
            complete: false,
            acknowledged: Totals::default(),
            users: None,
            updated_at: format_rfc3339(&Utc::now()),
        }
    }

    /// The state at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<BackfillState>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            anyhow!(
                "state file {} is not a backfill state ({e}): delete it or pass --restart",
                path.display()
            )
        })
    }

    /// Writes the state atomically (a temporary file renamed over the old
    /// one), so that a crash leaves the old state or the new, never half.
    /// The temporary file is the process's own: two runs started on one
    /// file by mistake do not break each other's writes, and whichever
    /// writes last records a position its own answers vouch for.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.updated_at = format_rfc3339(&Utc::now());
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(self)?)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("writing state file {}", path.display()))
    }
}

/// `<interactions>.backfill.json`, beside the input.
pub fn default_state_path(interactions: &Path) -> PathBuf {
    let mut name = interactions.as_os_str().to_owned();
    name.push(".backfill.json");
    PathBuf::from(name)
}

/// Appends one valid interaction as its SPEC §2.1 JSON line, newline
/// included: the same JSON value as `serde_json::to_string(&raw.validate())`
/// (tested), written without building an [`features::Interaction`] or a
/// `serde_json::Value` per row.
pub fn write_line(out: &mut Vec<u8>, raw: &RawInteraction<'_>, checked: &CheckedInteraction<'_>) {
    fn text<'s>(v: &'s Option<std::borrow::Cow<'_, str>>) -> &'s str {
        v.as_deref().unwrap_or_default()
    }
    out.extend_from_slice(b"{\"id\":");
    json_str(out, &checked.id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(checked.kind.wire().as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":\"");
    write_timestamp(out, checked.timestamp_micros);
    out.push(b'"');
    for (key, id, kind) in [
        (
            &b",\"origin\":{\"id\":"[..],
            &raw.origin_id,
            &raw.origin_type,
        ),
        (b",\"actor\":{\"id\":", &raw.actor_id, &raw.actor_type),
        (b",\"target\":{\"id\":", &raw.target_id, &raw.target_type),
    ] {
        out.extend_from_slice(key);
        json_str(out, text(id));
        out.extend_from_slice(b",\"type\":");
        json_str(out, text(kind));
        out.push(b'}');
    }
    if let Some(amount) = raw.amount {
        out.extend_from_slice(b",\"value\":{\"amount\":");
        json_f64(out, amount);
        out.extend_from_slice(b",\"currency\":");
        json_str(out, text(&raw.currency));
        out.push(b'}');
    }
    if let Some(quantity) = raw.quantity {
        out.extend_from_slice(b",\"quantity\":");
        json_f64(out, quantity);
    }
    out.extend_from_slice(b"}\n");
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Most ids need no escaping: copy them as they are.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Numbers as serde_json writes them (shortest round-trip form), so that
/// the line is the JSON value the server's own serialisation gives.
fn json_f64(out: &mut Vec<u8>, x: f64) {
    let _ = serde_json::to_writer(&mut *out, &x);
}

/// The instant as [`format_rfc3339`] writes it (UTC, `Z`, sub-second digits
/// only when present: 3 for whole milliseconds, else 6), without its
/// `String`.
fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    // Checked instants are 1970–9999; the fallback mirrors `validate`.
    let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for p in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(p) % 10) as u8);
        }
    };
    digits(out, t.year().unsigned_abs(), 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    let fraction = t.timestamp_subsec_micros();
    if fraction != 0 {
        out.push(b'.');
        if fraction % 1000 == 0 {
            digits(out, fraction / 1000, 3);
        } else {
            digits(out, fraction, 6);
        }
    }
    out.push(b'Z');
}

/// One request's worth of lines.
#[derive(Debug)]
struct Batch {
    seq: u64,
    /// The file row of each line.
    rows: Vec<usize>,
    body: Bytes,
}

impl Batch {
    fn describe(&self) -> String {
        match (self.rows.first(), self.rows.last()) {
            (Some(a), Some(b)) => format!("rows {a}–{b}"),
            _ => "an empty batch".into(),
        }
    }
}

/// A batch the server has answered.
#[derive(Debug)]
struct Answered {
    seq: u64,
    end_row: usize,
    totals: Totals,
    /// Rejected lines the server listed, by file row.
    rejected: Vec<(usize, ValidationErrors)>,
}

/// The position up to which every batch has been acknowledged, from
/// answers that arrive in any order.
#[derive(Debug)]
struct Acks {
    next: u64,
    waiting: BTreeMap<u64, (usize, Totals)>,
    position: usize,
    totals: Totals,
}

impl Acks {
    fn new(position: usize) -> Acks {
        Acks {
            next: 0,
            waiting: BTreeMap::new(),
            position,
            totals: Totals::default(),
        }
    }

    /// Records batch `seq` (ending at `end_row`) as answered; whether the
    /// position moved.
    fn ack(&mut self, seq: u64, end_row: usize, totals: Totals) -> bool {
        self.waiting.insert(seq, (end_row, totals));
        let mut moved = false;
        while let Some((end_row, totals)) = self.waiting.remove(&self.next) {
            self.position = end_row;
            self.totals.add(&totals);
            self.next += 1;
            moved = true;
        }
        moved
    }
}

/// What the reader thread saw.
#[derive(Debug)]
struct ReadSummary {
    report: LoadReport,
    /// Valid rows at or before the resume position, not sent.
    earlier: u64,
    /// The last valid row.
    last_row: usize,
}

/// Reads the file, turning valid rows after `from_row` into batches of
/// `batch` lines, until the file ends or the receiver is gone.
fn read_batches(
    path: &Path,
    from_row: usize,
    batch: usize,
    tx: mpsc::Sender<Batch>,
) -> Result<ReadSummary> {
    let mut body = Vec::with_capacity(batch * 320);
    let mut rows = Vec::with_capacity(batch);
    let mut seq = 0;
    let mut earlier = 0;
    let mut last_row = from_row;
    let mut receiver_gone = false;
    let mut send = |body: Vec<u8>, rows: Vec<usize>| {
        let b = Batch {
            seq,
            rows,
            body: Bytes::from(body),
        };
        seq += 1;
        tx.blocking_send(b).is_ok()
    };
    let report = visit_interactions(path, |row, raw, checked| {
        last_row = row;
        if row <= from_row {
            earlier += 1;
            return Ok(());
        }
        write_line(&mut body, raw, checked);
        rows.push(row);
        if rows.len() == batch {
            // Sized from the last batch, so that filling it rarely grows it.
            let next = Vec::with_capacity(body.len() + body.len() / 8);
            let full = std::mem::replace(&mut body, next);
            let full_rows = std::mem::replace(&mut rows, Vec::with_capacity(batch));
            if !send(full, full_rows) {
                receiver_gone = true;
                return Err(std::io::Error::other("backfill stopped").into());
            }
        }
        Ok(())
    });
    let report = match report {
        Ok(r) => r,
        // The sending side stopped and says why.
        Err(_) if receiver_gone => LoadReport::default(),
        Err(e) => return Err(e.into()),
    };
    if !rows.is_empty() && !receiver_gone {
        send(body, rows);
    }
    Ok(ReadSummary {
        report,
        earlier,
        last_row,
    })
}

/// The answer of `POST /v1/interactions`: only the counts and the listed
/// rejections are read (serde skips the ids).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngestAnswer {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    rejected: Vec<RejectedItem>,
    /// Older servers list every rejection and have no count.
    #[serde(default)]
    rejected_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RejectedItem {
    index: usize,
    #[serde(default)]
    errors: ValidationErrors,
}

/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody<T> {
    error: ErrorDetails<T>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetails<T> {
    details: T,
}

/// A wait of between half and all of `100 ms << (attempt - 1)`, capped at
/// 10 s: the random part keeps requests that failed together from being
/// retried together.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(MAX_BACKOFF);
    // A fresh std hasher key per call: randomness without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    cap.mul_f64(fraction)
}

/// POSTs `body` until the server gives an answer that is not "try again":
/// 429 and 503 wait `Retry-After` (or back off) and resend; connection
/// errors and other 5xx back off and resend, at most `retries` times. The
/// final status and body are for the caller to judge.
async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    content_type: &str,
    body: Bytes,
    retries: u32,
    what: &dyn Fn() -> String,
) -> Result<(StatusCode, Bytes)> {
    let mut failures = 0;
    let mut overloaded = 0;
    loop {
        let attempt = client
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .bearer_auth(key)
            .body(body.clone())
            .send()
            .await;
        let wait = match attempt {
            Ok(response)
                if matches!(
                    response.status(),
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ) =>
            {
                overloaded += 1;
                if overloaded >= MAX_OVERLOADED {
                    bail!(
                        "POST {url} for {}: the server answered {} {overloaded} times in a row; giving up",
                        what(),
                        response.status()
                    );
                }
                let asked = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                asked.unwrap_or_else(|| backoff(overloaded))
            }
            Ok(response) => {
                let status = response.status();
                let result = response.bytes().await;
                match result {
                    Ok(answer) if !status.is_server_error() => return Ok((status, answer)),
                    Ok(answer) => {
                        failures += 1;
                        if failures >= retries {
                            bail!(
                                "POST {url} for {}: the server answered {status} {failures} times; last answer: {}",
                                what(),
                                shown(&answer)
                            );
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures >= retries {
                            bail!(
                                "POST {url} for {}: failed {failures} times; last error: {e}",
                                what()
                            );
                        }
                    }
                }
                backoff(failures)
            }
            Err(e) => {
                failures += 1;
                if failures >= retries {
                    bail!(
                        "POST {url} for {}: failed {failures} times; last error: {e:#}",
                        what()
                    );
                }
                backoff(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// An answer body for an error message, cut to a readable length.
fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(2_000) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    retries: u32,
    batch: Batch,
) -> Result<Answered> {
    let what = || batch.describe();
    let (status, body) = post(client, url, key, NDJSON, batch.body.clone(), retries, &what).await?;
    let answer: IngestAnswer = match status {
        s if s.is_success() => serde_json::from_slice(&body)
            .with_context(|| format!("POST {url} for {}: unreadable answer", what()))?,
        // Every line rejected: the server validates as this tool does, so
        // only a server of other rules answers this; the lines are counted
        // as rejected like those of a partly rejected batch.
        StatusCode::UNPROCESSABLE_ENTITY => {
            match serde_json::from_slice::<ErrorBody<IngestAnswer>>(&body) {
                Ok(e) => e.error.details,
                Err(_) => bail!(
                    "POST {url} answered {status} for {}: {}",
                    what(),
                    shown(&body)
                ),
            }
        }
        _ => bail!(
            "POST {url} answered {status} for {}: {}",
            what(),
            shown(&body)
        ),
    };
    let rejected_count = answer
        .rejected_count
        .unwrap_or(answer.rejected.len() as u64);
    Ok(Answered {
        seq: batch.seq,
        end_row: batch.rows.last().copied().unwrap_or_default(),
        totals: Totals {
            sent: batch.rows.len() as u64,
            accepted: answer.accepted,
            duplicates: answer.duplicates,
            rejected: rejected_count,
        },
        rejected: answer
            .rejected
            .into_iter()
            .map(|r| {
                (
                    batch.rows.get(r.index).copied().unwrap_or_default(),
                    r.errors,
                )
            })
            .collect(),
    })
}

/// Resolves when the process is asked to stop, naming how.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { return "interrupted" },
                _ = term.recv() => return "terminated",
            }
        }
    }
    match tokio::signal::ctrl_c().await {
        Ok(()) => "interrupted",
        // No handler: never stop on a signal we cannot hear.
        Err(_) => std::future::pending().await,
    }
}

/// What a backfill did.
#[derive(Debug, Default)]
pub struct BackfillOutcome {
    /// The whole file as read in this run: rows, invalid rows by reason.
    pub report: LoadReport,
    /// Valid rows acknowledged by an earlier run, not sent again.
    pub earlier: u64,
    pub this_run: Totals,
    /// Over every run (from the state file).
    pub all_runs: Totals,
    /// Rejections the server listed, by file row.
    pub server_rejected: ProblemSummary,
    pub users: Option<UsersOutcome>,
    /// The state said the file was already complete: nothing was sent.
    pub already_complete: bool,
    /// Time spent on the interactions.
    pub elapsed: Duration,
}

/// What registering a users file did.
#[derive(Debug, Default)]
pub struct UsersOutcome {
    pub report: LoadReport,
    pub registered: u64,
    pub already_registered: u64,
    pub rejected: u64,
    /// The server's field errors, by file row.
    pub problems: ProblemSummary,
    /// The state said this file's users were all answered: nothing was sent.
    pub done_earlier: bool,
}

/// Runs a backfill: registers the users (if given), then streams the
/// interactions, printing progress, reports and a summary.
pub fn run(args: &BackfillArgs) -> Result<BackfillOutcome> {
    if args.batch == 0 || args.in_flight == 0 || args.retries == 0 {
        bail!("--batch, --in-flight and --retries must be at least 1");
    }
    let api = args.api.trim_end_matches('/');
    if api.starts_with("https://") {
        bail!("{api}: this build of micro-train speaks plain HTTP only; reach an HTTPS server through a local proxy");
    }
    if !api.starts_with("http://") {
        bail!("--api must be an http:// address, e.g. http://127.0.0.1:8080; got {api:?}");
    }
    // A file of an unknown type fails before anything is sent.
    Format::of(&args.interactions)?;
    if let Some(users) = &args.users {
        Format::of(users)?;
    }
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| default_state_path(&args.interactions));
    let identity = FileIdentity::of(&args.interactions)?;
    let earlier = if args.restart {
        None
    } else {
        BackfillState::load(&state_path)?
    };
    let mut state = match earlier {
        None => BackfillState::new(identity),
        Some(state) => {
            let changes = state.input.changes(&identity);
            if !changes.is_empty() {
                bail!(
                        "{} has changed ({}) since {} was written, so the rows it records as sent may not be these rows. \
                         Delete {} or pass --restart to send the file from the start (rows the server already has count as duplicates).",
                        args.interactions.display(),
                        changes.join(", "),
                        state_path.display(),
                        state_path.display()
                    );
            }
            state
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(USERS_IN_FLIGHT.max(args.in_flight))
        .build()
        .context("building the HTTP client")?;

    let mut outcome = BackfillOutcome::default();
    if let Some(users) = &args.users {
        outcome.users = Some(runtime.block_on(register_users(
            &client,
            api,
            args,
            users,
            &mut state,
            &state_path,
        ))?);
    }
    if state.complete {
        eprintln!(
            "{}: already complete: every row was acknowledged by an earlier run ({}); nothing to send (--restart sends it again)",
            args.interactions.display(),
            state_path.display()
        );
        outcome.already_complete = true;
        outcome.all_runs = state.acknowledged;
        println!(
            "backfill: nothing sent; all runs: {}",
            describe_totals(&state.acknowledged)
        );
        return Ok(outcome);
    }
    if state.rows_done > 0 {
        eprintln!(
            "{}: resuming after row {}: an earlier run had every row up to it acknowledged ({}); those rows are not sent again",
            args.interactions.display(),
            thousands(state.rows_done as u64),
            state_path.display()
        );
    }
    let started = Instant::now();
    runtime.block_on(send_interactions(
        &client,
        api,
        args,
        &mut state,
        &state_path,
        &mut outcome,
    ))?;
    outcome.elapsed = started.elapsed();
    outcome.all_runs = state.acknowledged;

    print_report("interactions", &outcome.report);
    print_problems("rejected by the server", &outcome.server_rejected);
    let secs = outcome.elapsed.as_secs_f64();
    let t = &outcome.this_run;
    println!(
        "backfill: {} rows read, {} sent by an earlier run, {} sent, {} accepted, {} duplicates, {} rejected, {} skipped in the file; {secs:.1} s, {} rows/s",
        thousands(outcome.report.rows as u64),
        thousands(outcome.earlier),
        thousands(t.sent),
        thousands(t.accepted),
        thousands(t.duplicates),
        thousands(t.rejected),
        thousands(outcome.report.skipped as u64),
        thousands((t.sent as f64 / secs.max(1e-9)) as u64),
    );
    if outcome.earlier > 0 {
        println!("backfill: all runs: {}", describe_totals(&outcome.all_runs));
    }
    Ok(outcome)
}

async fn send_interactions(
    client: &reqwest::Client,
    api: &str,
    args: &BackfillArgs,
    state: &mut BackfillState,
    state_path: &Path,
    outcome: &mut BackfillOutcome,
) -> Result<()> {
    let url = format!("{api}/v1/interactions");
    let from_row = state.rows_done;
    let earlier_totals = state.acknowledged;
    let total_rows = match Format::of(&args.interactions)? {
        Format::Parquet => parquet_rows(&args.interactions),
        _ => None,
    };
    let bar = progress_bar(
        args.progress,
        total_rows.map(|n| n.saturating_sub(from_row as u64)),
        "rows sent",
    );

    // Ready batches wait here while `in_flight` are sent: the reader runs
    // ahead by at most this much.
    let (tx, mut rx) = mpsc::channel::<Batch>(args.in_flight);
    let path = args.interactions.clone();
    let batch = args.batch;
    let reader = std::thread::Builder::new()
        .name("backfill-reader".into())
        .spawn(move || read_batches(&path, from_row, batch, tx))
        .context("starting the reader thread")?;

    let mut batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|b| send_batch(client, &url, &args.key, args.retries, b))
        .buffer_unordered(args.in_flight);
    let mut acks = Acks::new(from_row);
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut saved = Instant::now();
    let record = |state: &mut BackfillState, acks: &Acks| {
        state.rows_done = acks.position;
        state.acknowledged = earlier_totals;
        state.acknowledged.add(&acks.totals);
    };
    let failure = loop {
        let next = tokio::select! {
            next = batches.next() => next,
            how = &mut stop => break Some(anyhow!("{how}")),
        };
        match next {
            None => break None,
            Some(Err(e)) => break Some(e),
            Some(Ok(answered)) => {
                outcome.this_run.add(&answered.totals);
                for (row, errors) in &answered.rejected {
                    outcome.server_rejected.add(*row, errors);
                }
                bar.inc(answered.totals.sent);
                let moved = acks.ack(answered.seq, answered.end_row, answered.totals);
                if moved && saved.elapsed() >= SAVE_EVERY {
                    record(state, &acks);
                    state.save(state_path)?;
                    saved = Instant::now();
                }
            }
        }
    };
    // Cancels what is in flight and closes the channel, which stops the
    // reader.
    drop(batches);
    record(state, &acks);
    let read = reader
        .join()
        .map_err(|_| anyhow!("the reader thread panicked"))?;
    let position_note = |state: &BackfillState| {
        format!(
            "every row up to {} is acknowledged ({}); run the same command again to go on from there",
            thousands(state.rows_done as u64),
            state_path.display()
        )
    };
    if let Some(e) = failure {
        bar.abandon();
        state.save(state_path)?;
        bail!("{e:#}\n{}", position_note(state));
    }
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            bar.abandon();
            state.save(state_path)?;
            bail!("{e:#}\n{}", position_note(state));
        }
    };
    bar.finish_and_clear();
    state.rows_done = acks.position.max(read.last_row);
    state.complete = true;
    state.save(state_path)?;
    outcome.report = read.report;
    outcome.earlier = read.earlier;
    Ok(())
}

/// Rows in a Parquet file, from its footer: the progress bar's length.
fn parquet_rows(path: &Path) -> Option<u64> {
    use polars::prelude::{ParquetReader, SerReader};
    let file = File::open(path).ok()?;
    let rows = ParquetReader::new(file).num_rows().ok()?;
    u64::try_from(rows).ok()
}

fn progress_bar(enabled: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            format!("{{elapsed:>4}} {{wide_bar}} {{human_pos}}/{{human_len}} {what}, {{per_sec:.0}}, eta {{eta}}"),
        ),
        None => (
            ProgressBar::no_length(),
            format!("{{spinner}} {{elapsed:>4}} {{human_pos}} {what}, {{per_sec:.0}}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

async fn register_users(
    client: &reqwest::Client,
    api: &str,
    args: &BackfillArgs,
    path: &Path,
    state: &mut BackfillState,
    state_path: &Path,
) -> Result<UsersOutcome> {
    let identity = FileIdentity::of(path)?;
    if let Some(done) = &state.users {
        if done.input.changes(&identity).is_empty() {
            eprintln!(
                "{}: every user was answered in an earlier run ({}); not sent again",
                path.display(),
                state_path.display()
            );
            return Ok(UsersOutcome {
                registered: done.registered,
                already_registered: done.already_registered,
                rejected: done.rejected,
                done_earlier: true,
                ..UsersOutcome::default()
            });
        }
    }
    let started = Instant::now();
    let (users, report) = read_users(path)?;
    let url = format!("{api}/v1/users");
    let bar = progress_bar(args.progress, Some(users.len() as u64), "users sent");
    let mut outcome = UsersOutcome {
        report,
        ..UsersOutcome::default()
    };
    let mut answers = futures::stream::iter(users)
        .map(|(row, body)| {
            let url = &url;
            async move {
                let what = || format!("users row {row}");
                let bytes = Bytes::from(serde_json::to_vec(&body)?);
                let answer = post(
                    client,
                    url,
                    &args.key,
                    "application/json",
                    bytes,
                    args.retries,
                    &what,
                )
                .await?;
                Ok::<_, anyhow::Error>((row, answer))
            }
        })
        .buffer_unordered(USERS_IN_FLIGHT);
    while let Some(answer) = answers.next().await {
        let (row, (status, body)) = answer?;
        match status {
            s if s.is_success() => outcome.registered += 1,
            // The user id or e-mail is registered already: a rerun, or a
            // user who signed up on their own.
            StatusCode::CONFLICT => outcome.already_registered += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                outcome.rejected += 1;
                match serde_json::from_slice::<ErrorBody<ValidationErrors>>(&body) {
                    Ok(e) if !e.error.details.is_empty() => {
                        outcome.problems.add(row, &e.error.details)
                    }
                    _ => outcome.problems.add_one(row, "$", &shown(&body)),
                }
            }
            _ => bail!(
                "POST {url} answered {status} for users row {row}: {}",
                shown(&body)
            ),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    print_report("users", &outcome.report);
    print_problems("users rejected by the server", &outcome.problems);
    eprintln!(
        "users: {} registered, {} already registered, {} rejected; {:.1} s",
        thousands(outcome.registered),
        thousands(outcome.already_registered),
        thousands(outcome.rejected),
        started.elapsed().as_secs_f64()
    );
    state.users = Some(UsersDone {
        input: identity,
        registered: outcome.registered,
        already_registered: outcome.already_registered,
        rejected: outcome.rejected,
    });
    state.save(state_path)?;
    Ok(outcome)
}

fn describe_totals(t: &Totals) -> String {
    format!(
        "{} sent, {} accepted, {} duplicates, {} rejected",
        thousands(t.sent),
        thousands(t.accepted),
        thousands(t.duplicates),
        thousands(t.rejected)
    )
}

/// A summary of problems in a few lines, as the load reports print them.
fn print_problems(what: &str, problems: &ProblemSummary) {
    if problems.is_empty() {
        return;
    }
    let groups = problems.groups();
    let rows: usize = groups.iter().map(|g| g.count).sum();
    eprintln!("{what}: {} problems", thousands(rows as u64));
    for g in groups.iter().take(features_batch::io::MAX_REPORTED_GROUPS) {
        eprintln!("  {}", describe_group(g));
    }
    if groups.len() > features_batch::io::MAX_REPORTED_GROUPS {
        eprintln!(
            "  … and {} more kinds of problem",
            groups.len() - features_batch::io::MAX_REPORTED_GROUPS
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::borrow::Cow;

    use features::interaction::RawTimestamp;
    use proptest::prelude::*;

    fn line_of(raw: &RawInteraction<'_>) -> Vec<u8> {
        let checked = raw.check().expect("valid");
        let mut out = Vec::new();
        write_line(&mut out, raw, &checked);
        out
    }

    /// Text of ids and types: plain ids, and ones that need escaping.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9_-]{1,12}",
            1 => "[a-zA-Z0-9 \"\\\\/\\x00-\\x1Fé日本\\u{2028}]{1,10}"
                .prop_filter("not blank", |s| !s.trim().is_empty()),
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-1_000i64..1_000).prop_map(|x| x as f64),
            (-1e6..1e6f64),
            Just(0.1 + 0.2),
            Just(-0.0),
            Just(1e-300),
            Just(9e8),
        ]
    }

    fn micros() -> impl Strategy<Value = i64> {
        let max = 253_402_300_799_000_000i64;
        prop_oneof![
            (0..max / 1_000_000).prop_map(|s| s * 1_000_000),
            (0..max / 1_000).prop_map(|m| m * 1_000),
            0..max,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]
        /// The line is the JSON value of the validated interaction, and the
        /// server reads it back as that interaction.
        #[test]
        fn a_line_is_the_validated_interaction(
            id in proptest::option::of(text()),
            kind in proptest::sample::select(vec!["PURCHACE", "PURCHASE", "SAVE", "INQUIRY", "INQUERY", "VIEW", "SHARE"]),
            ts in micros(),
            as_text in any::<bool>(),
            entities in proptest::collection::vec(text(), 6),
            value in proptest::option::of((number(), proptest::sample::select(vec!["USD", "EUR"]))),
            quantity in proptest::option::of(number()),
        ) {
            let ts_text = format_rfc3339(&DateTime::from_timestamp_micros(ts).unwrap());
            let raw = RawInteraction {
                id: id.as_deref().map(Cow::Borrowed),
                kind: Some(Cow::Borrowed(kind)),
                timestamp: if as_text { RawTimestamp::Text(Cow::Borrowed(&ts_text)) } else { RawTimestamp::Micros(ts) },
                origin_id: Some(Cow::Borrowed(&entities[0])),
                origin_type: Some(Cow::Borrowed(&entities[1])),
                actor_id: Some(Cow::Borrowed(&entities[2])),
                actor_type: Some(Cow::Borrowed(&entities[3])),
                target_id: Some(Cow::Borrowed(&entities[4])),
                target_type: Some(Cow::Borrowed(&entities[5])),
                amount: value.map(|v| v.0),
                currency: value.map(|v| Cow::Borrowed(v.1)),
                quantity,
            };
            let validated = raw.validate().expect("valid");
            let line = line_of(&raw);
            prop_assert_eq!(line.last(), Some(&b'\n'));
            let text = std::str::from_utf8(&line).expect("utf-8");
            prop_assert_eq!(text.matches('\n').count(), 1, "one line: {}", text);
            let ours: serde_json::Value = serde_json::from_str(text).expect("JSON");
            let theirs: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&validated).unwrap()).unwrap();
            prop_assert_eq!(&ours, &theirs);
            // The numbers' text is exact (std parses correctly rounded);
            // serde_json without its `float_roundtrip` feature may read it
            // one ulp off, as the server reads any client's numbers.
            for x in [value.map(|v| v.0), quantity].into_iter().flatten() {
                let mut text = Vec::new();
                json_f64(&mut text, x);
                let parsed: f64 = std::str::from_utf8(&text).unwrap().parse().unwrap();
                prop_assert_eq!(parsed.to_bits(), x.to_bits());
            }
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-15 * a.abs().max(b.abs()),
                (a, b) => a.is_none() && b.is_none(),
            };
            let mut read_back = features::Interaction::from_json(&ours).expect("valid");
            prop_assert!(close(read_back.quantity, validated.quantity));
            prop_assert!(close(
                read_back.value.as_ref().map(|v| v.amount),
                validated.value.as_ref().map(|v| v.amount)
            ));
            read_back.quantity = validated.quantity;
            if let (Some(r), Some(v)) = (read_back.value.as_mut(), validated.value.as_ref()) {
                r.amount = v.amount;
            }
            prop_assert_eq!(read_back, validated);
        }
    }

    #[test]
    fn timestamps_are_written_as_format_rfc3339_writes_them() {
        for micros in [
            0,
            1_700_000_000_000_000,
            1_700_000_000_123_000,
            1_700_000_000_123_456,
            1_700_000_000_000_001,
            253_402_300_799_000_000,
        ] {
            let mut out = Vec::new();
            write_timestamp(&mut out, micros);
            let t = DateTime::from_timestamp_micros(micros).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format_rfc3339(&t));
        }
    }

    #[test]
    fn the_position_moves_only_over_batches_answered_in_order() {
        let mut acks = Acks::new(10);
        let t = |n| Totals {
            sent: n,
            accepted: n,
            ..Totals::default()
        };
        assert!(!acks.ack(1, 30, t(2)));
        assert!(!acks.ack(2, 40, t(3)));
        assert_eq!(acks.position, 10);
        assert!(acks.ack(0, 20, t(1)));
        assert_eq!(acks.position, 40);
        assert_eq!(acks.totals.sent, 6);
        assert!(!acks.ack(4, 60, t(1)));
        assert_eq!(acks.position, 40);
        assert!(acks.ack(3, 50, t(1)));
        assert_eq!(acks.position, 60);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for attempt in 1..40 {
            let wait = backoff(attempt);
            let full = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(100));
        assert!(backoff(30) >= Duration::from_secs(5));
    }

    #[test]
    fn the_state_is_saved_atomically_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("log.csv");
        std::fs::write(&input, "a,b\n1,2\n").unwrap();
        let path = default_state_path(&input);
        assert!(path.to_string_lossy().ends_with("log.csv.backfill.json"));
        assert_eq!(BackfillState::load(&path).unwrap(), None);
        let mut state = BackfillState::new(FileIdentity::of(&input).unwrap());
        state.rows_done = 7;
        state.save(&path).unwrap();
        assert_eq!(BackfillState::load(&path).unwrap(), Some(state.clone()));
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        std::fs::write(&input, "a,b\n1,3\n").unwrap();
        let changed = FileIdentity::of(&input).unwrap();
        assert!(state.input.changes(&changed).contains(&"content"));
        std::fs::write(&path, "not json").unwrap();
        let err = BackfillState::load(&path).unwrap_err().to_string();
        assert!(err.contains("--restart"), "{err}");
    }
}
