//! `micro-load`: drives a running `micro-serve` and reports throughput and
//! latency percentiles, so the figures in `docs/benchmarks.md` can be
//! reproduced (`serving/load/run.sh` runs the whole set).
//!
//! Two modes: closed loop (`--concurrency N` workers, each sending its next
//! request when the last answered: the service's maximum rate) and open loop
//! (`--rate R`: requests are due on a fixed schedule, at most
//! `--connections` of them in flight, and latency counts from when a request
//! was due, so a stall is not hidden by the client waiting).
//!
//! Every run but the NATS one also reports the machine's own stalls, seen
//! by a probe thread (see [`probe_stalls`]): on a virtual machine the host
//! may stop every core for milliseconds at a time, which no server can
//! answer through.
//! The `fsync` scenario measures what a durable commit costs the machine
//! with no server at all, and provokes those stalls on its own
//! (`serving/load/stalls.sh`).
//!
//! `--format protobuf` sends the batch scenario's batches, and the NATS
//! scenario's messages, as protobuf `micro.v1.InteractionBatch`es holding
//! the same interactions (`serving/load/protobuf.sh` compares the two).

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::TimeZone;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use proto::{v1, Message};
use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy, ThreadPriority,
    ThreadSchedulePolicy,
};
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// `GET /healthz`: the service's own ceiling on this machine.
    Healthz,
    /// `POST /v1/interactions` with one interaction.
    Single,
    /// `POST /v1/interactions` with `--batch` interactions (NDJSON).
    Batch,
    /// `GET /v1/profiles/{userId}` over `--users` users.
    Profile,
    /// `--count` interactions published on NATS JetStream
    /// (`micro.interactions.load`); measured end to end: until the service
    /// reports them all taken and stored (`micro_bus_interactions_total`).
    Nats,
    /// No server: writes 16 KiB to a file in `--dir` and waits for it to
    /// reach the disk (`fdatasync`), what one durable commit costs the
    /// machine.
    Fsync,
}

/// How the batch and NATS scenarios encode interactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Batch: NDJSON bodies; NATS: one JSON interaction per message.
    Json,
    /// Batch: `micro.v1.InteractionBatch` bodies
    /// (`application/x-protobuf`); NATS: one such batch of `--batch`
    /// interactions per message.
    Protobuf,
}

#[derive(Parser, Debug)]
#[command(name = "micro-load", version, about = "Load generator for micro-serve")]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent requests (closed loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Requests per second (open loop); unset: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: requests in flight at most (one connection each). A
    /// request due while all are busy waits for one, and its wait counts in
    /// its latency; without a bound, a lagging server would be sent a new
    /// connection per waiting request, measuring the generator's reaction
    /// rather than the server.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Interactions per request in the batch scenario (and per message in
    /// the NATS scenario with `--format protobuf`).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Encoding of the batch and NATS scenarios' interactions.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Distinct users interactions and reads are spread over.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Target ids to point interactions at (comma-separated), e.g. from the
    /// served model's catalog.
    #[arg(long, value_delimiter = ',', default_value = "t-1")]
    targets: Vec<String>,
    /// Distinguishes ids between runs so interactions are new, not duplicates.
    #[arg(long, default_value = "run")]
    run_id: String,
    /// Print the result as one JSON line as well.
    #[arg(long)]
    json: bool,
    /// NATS server (nats scenario).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Interactions to publish (nats scenario).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Directory of the fsync scenario's file (removed at the end).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
}

/// Bytes each fsync-scenario request writes (four SQLite pages, the size of
/// a small group commit in the write-ahead log).
const FSYNC_WRITE: usize = 16 * 1024;
/// Blocks the fsync scenario's file cycles through (16 MiB).
const FSYNC_BLOCKS: u64 = 1024;

struct Shared {
    args: Args,
    client: reqwest::Client,
    next: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// The fsync scenario's file.
    fsync: Option<Arc<FsyncFile>>,
    /// Time spent building request bodies and their bytes: the
    /// generator's share of the machine, which the server does not get.
    build_nanos: AtomicU64,
    body_bytes: AtomicU64,
}

/// Interaction `n` of a run, in whatever encoding.
struct Parts<'a> {
    n: u64,
    user: u64,
    target: &'a str,
    kind: &'static str,
    /// Day of October 2026, hour, minute.
    at: (u64, u64, u64),
    shop: u64,
    amount: Option<f64>,
}

impl Shared {
    fn parts(&self, n: u64) -> Parts<'_> {
        let a = &self.args;
        let kind = ["VIEW", "SAVE", "VIEW", "SHARE", "PURCHACE"][(n % 5) as usize];
        Parts {
            n,
            user: n.wrapping_mul(2_654_435_761) % a.users,
            target: &a.targets[(n as usize) % a.targets.len()],
            kind,
            at: (1 + n % 28, n % 24, n % 60),
            shop: n % 7,
            amount: (kind == "PURCHACE").then(|| (5 + n % 200) as f64 + 0.5),
        }
    }

    fn interaction(&self, n: u64) -> String {
        let Parts {
            n,
            user,
            target,
            kind,
            at: (day, hour, minute),
            shop,
            amount,
        } = self.parts(n);
        let value = match amount {
            Some(amount) => format!(r#","value":{{"amount":{amount},"currency":"USD"}}"#),
            None => String::new(),
        };
        format!(
            r#"{{"id":"{}-{n}","type":"{kind}","timestamp":"2026-10-{day:02}T{hour:02}:{minute:02}:00Z","origin":{{"id":"shop-{shop}","type":"shop"}},"actor":{{"id":"user-{user}","type":"user"}},"target":{{"id":"{target}","type":"product"}}{value}}}"#,
            self.args.run_id,
        )
    }

    /// The same interaction as [`Shared::interaction`], in protobuf.
    fn interaction_proto(&self, n: u64) -> v1::Interaction {
        let p = self.parts(n);
        let (day, hour, minute) = p.at;
        let seconds = chrono::Utc
            .with_ymd_and_hms(2026, 10, day as u32, hour as u32, minute as u32, 0)
            .single()
            .map_or(0, |t| t.timestamp());
        let entity = |id: String, kind: &str| {
            Some(v1::Entity {
                id,
                r#type: kind.to_owned(),
            })
        };
        v1::Interaction {
            id: Some(format!("{}-{}", self.args.run_id, p.n)),
            r#type: p.kind.to_owned(),
            timestamp: Some(proto::Timestamp { seconds, nanos: 0 }),
            origin: entity(format!("shop-{}", p.shop), "shop"),
            actor: entity(format!("user-{}", p.user), "user"),
            target: entity(p.target.to_owned(), "product"),
            value: p.amount.map(|amount| v1::Money {
                amount: Some(amount),
                currency: "USD".to_owned(),
            }),
            quantity: None,
        }
    }

    /// Interactions `first..first + count` as one body: NDJSON lines or an
    /// encoded `InteractionBatch`.
    fn batch_body(&self, first: u64, count: u64) -> Vec<u8> {
        let started = Instant::now();
        let body = match self.args.format {
            Format::Json => {
                let mut body = String::with_capacity(count as usize * 300);
                for n in first..first + count {
                    body.push_str(&self.interaction(n));
                    body.push('\n');
                }
                body.into_bytes()
            }
            Format::Protobuf => v1::InteractionBatch {
                interactions: (first..first + count)
                    .map(|n| self.interaction_proto(n))
                    .collect(),
            }
            .encode_to_vec(),
        };
        self.build_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        body
    }

    async fn one(&self) -> Result<u64> {
        let a = &self.args;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let request = match a.scenario {
            Scenario::Fsync => {
                let target = self.fsync.clone().context("no file to write")?;
                tokio::task::spawn_blocking(move || target.write_block(n)).await??;
                return Ok(0);
            }
            Scenario::Healthz | Scenario::Nats => self.client.get(format!("{}/healthz", a.base)),
            Scenario::Profile => {
                let user = n.wrapping_mul(2_654_435_761) % a.users;
                self.client
                    .get(format!("{}/v1/profiles/user-{user}", a.base))
            }
            Scenario::Single => self
                .client
                .post(format!("{}/v1/interactions", a.base))
                .header("content-type", "application/json")
                .body(self.interaction(n)),
            Scenario::Batch => {
                let body = self.batch_body(n * a.batch as u64, a.batch as u64);
                let content_type = match a.format {
                    Format::Json => "application/x-ndjson",
                    Format::Protobuf => proto::CONTENT_TYPE,
                };
                self.client
                    .post(format!("{}/v1/interactions", a.base))
                    .header("content-type", content_type)
                    .body(body)
            }
        };
        let response = request.send().await?;
        let status = response.status();
        let _ = response.bytes().await?;
        // A profile not found is an answer too (reads of users not yet seen).
        if status.is_success() || (matches!(a.scenario, Scenario::Profile) && status == 404) {
            Ok(match a.scenario {
                Scenario::Batch => a.batch as u64,
                Scenario::Single => 1,
                _ => 0,
            })
        } else {
            bail!("status {status}")
        }
    }

    async fn record(&self, due: Instant) -> u64 {
        let outcome = self.one().await;
        let micros = due.elapsed().as_micros() as u64;
        let _ = self.latency.lock().await.record(micros.max(1));
        match outcome {
            Ok(items) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                items
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                0
            }
        }
    }
}

/// The service's count of interactions taken from NATS.
async fn bus_taken(client: &reqwest::Client, base: &str) -> Result<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("micro_bus_interactions_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}

/// Publishes `--count` interactions on JetStream (up to 4,096 awaiting their
/// acknowledgement at once) and waits until the service has stored them all.
async fn nats(shared: Arc<Shared>) -> Result<()> {
    let a = &shared.args;
    let js = async_nats::jetstream::new(async_nats::connect(&a.nats_url).await?);
    let before = bus_taken(&shared.client, &a.base).await?;
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    // JSON: one interaction per message; protobuf: `--batch` per message.
    let per_message = match a.format {
        Format::Json => 1,
        Format::Protobuf => a.batch.max(1) as u64,
    };
    for first in (0..a.count).step_by(per_message as usize) {
        let count = per_message.min(a.count - first);
        let ack = match a.format {
            Format::Json => {
                js.publish("micro.interactions.load", shared.interaction(first).into())
                    .await?
            }
            Format::Protobuf => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Content-Type", proto::CONTENT_TYPE);
                js.publish_with_headers(
                    "micro.interactions.load",
                    headers,
                    shared.batch_body(first, count).into(),
                )
                .await?
            }
        };
        pending.push_back(ack);
        if pending.len() >= 4_096 {
            if let Some(ack) = pending.pop_front() {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    let published = started.elapsed().as_secs_f64();
    loop {
        let taken = bus_taken(&shared.client, &a.base).await?;
        if taken >= before + a.count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Nats ({:?}, {per_message} per message): {} interactions published in {published:.1} s, stored by the service in {secs:.1} s = {:.0} interactions/s end to end",
        a.format,
        a.count,
        a.count as f64 / secs
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({"scenario": "nats", "format": format!("{:?}", a.format).to_lowercase(),
                "per_message": per_message, "count": a.count, "seconds": secs,
                "interactions_per_sec": a.count as f64 / secs})
        );
    }
    Ok(())
}

/// How often the stall probe wakes.
const PROBE_EVERY: Duration = Duration::from_millis(1);
/// How late a wake-up must be to count as a stall.
const STALL_OVER: Duration = Duration::from_millis(2);

/// What the stall probe saw.
#[derive(Debug, Default)]
struct Stalls {
    /// Whether the probe ran at real-time priority.
    realtime: bool,
    /// Wake-ups later than [`STALL_OVER`]: how many, their lateness summed,
    /// and the longest.
    count: u64,
    total: Duration,
    longest: Duration,
    watched: Duration,
}

impl Stalls {
    fn share(&self) -> f64 {
        self.total.as_secs_f64() / self.watched.as_secs_f64().max(1e-9)
    }
}

/// A thread that sleeps [`PROBE_EVERY`] at a time until `stop`, counting
/// wake-ups late by more than [`STALL_OVER`]. At real-time priority (when
/// allowed: root or `CAP_SYS_NICE`) no other thread of this machine can keep
/// it from a core, so a late wake-up means the machine itself did not run:
/// on a virtual machine, the host stopped it. At normal priority it also
/// counts waits for a busy core, and says so.
fn probe_stalls(stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<Stalls>> {
    std::thread::Builder::new()
        .name("stall-probe".into())
        .spawn(move || {
            let realtime = set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Min,
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .is_ok();
            let mut seen = Stalls {
                realtime,
                ..Stalls::default()
            };
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(PROBE_EVERY);
                let late = before.elapsed().saturating_sub(PROBE_EVERY);
                if late > STALL_OVER {
                    seen.count += 1;
                    seen.total += late;
                    seen.longest = seen.longest.max(late);
                }
            }
            seen.watched = started.elapsed();
            seen
        })
        .context("stall probe thread")
}

/// The fsync scenario's file, written whole when created so that every
/// timed write overwrites (no request pays for the file growing), and
/// removed when dropped.
#[derive(Debug)]
struct FsyncFile {
    path: PathBuf,
    file: std::fs::File,
    block: Vec<u8>,
}

impl FsyncFile {
    fn create(path: PathBuf) -> Result<FsyncFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let target = FsyncFile {
            path,
            file,
            block: vec![0x5a; FSYNC_WRITE],
        };
        for i in 0..FSYNC_BLOCKS {
            target
                .file
                .write_all_at(&target.block, i * FSYNC_WRITE as u64)?;
        }
        target.file.sync_all()?;
        Ok(target)
    }

    /// Writes block `n` (modulo the file's size) and waits for the disk.
    fn write_block(&self, n: u64) -> std::io::Result<()> {
        self.file
            .write_all_at(&self.block, (n % FSYNC_BLOCKS) * FSYNC_WRITE as u64)?;
        self.file.sync_data()
    }
}

impl Drop for FsyncFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let duration = Duration::from_secs_f64(args.duration);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(args.connections).max(64))
        .tcp_nodelay(true)
        .build()
        .context("HTTP client")?;
    let fsync = match args.scenario {
        Scenario::Fsync => Some(Arc::new(FsyncFile::create(
            args.dir
                .join(format!("micro-load-fsync-{}", std::process::id())),
        )?)),
        _ => None,
    };
    if args.format == Format::Protobuf && !matches!(args.scenario, Scenario::Batch | Scenario::Nats)
    {
        bail!("--format protobuf is for the batch and nats scenarios");
    }
    let shared = Arc::new(Shared {
        args,
        client,
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new(3)?),
        fsync,
        build_nanos: AtomicU64::new(0),
        body_bytes: AtomicU64::new(0),
    });
    if matches!(shared.args.scenario, Scenario::Nats) {
        return nats(shared).await;
    }
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = probe_stalls(stop_probe.clone())?;
    let items = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    match shared.args.rate {
        None => {
            for _ in 0..shared.args.concurrency {
                let (shared, items) = (shared.clone(), items.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let n = shared.record(Instant::now()).await;
                        items.fetch_add(n, Ordering::Relaxed);
                    }
                }));
            }
        }
        Some(rate) => {
            // Paced from a thread of its own: tokio's timer rounds every
            // sleep up to the next millisecond, which would add up to 1 ms
            // of the generator's own lateness to each latency. A thread's
            // sleep wakes within tens of µs.
            let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            let in_flight = Arc::new(tokio::sync::Semaphore::new(shared.args.connections.max(1)));
            let pacer = {
                let (shared, items) = (shared.clone(), items.clone());
                tokio::task::spawn_blocking(move || {
                    let mut tasks = Vec::new();
                    let mut due = started;
                    while due < deadline {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        let (shared, items, in_flight) =
                            (shared.clone(), items.clone(), in_flight.clone());
                        let this = due;
                        tasks.push(tokio::spawn(async move {
                            let Ok(_permit) = in_flight.acquire_owned().await else {
                                return;
                            };
                            let n = shared.record(this).await;
                            items.fetch_add(n, Ordering::Relaxed);
                        }));
                        due += interval;
                    }
                    tasks
                })
            };
            tasks = pacer.await.context("pacing thread")?;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop_probe.store(true, Ordering::Relaxed);
    let stalls = probe
        .join()
        .map_err(|_| anyhow::anyhow!("the stall probe panicked"))?;
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let items = items.load(Ordering::Relaxed);
    let h = shared.latency.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mode = match shared.args.rate {
        Some(r) => format!("open loop at {r:.0}/s"),
        None => format!("closed loop, {} concurrent", shared.args.concurrency),
    };
    println!(
        "{:?} ({mode}): {ok} ok, {failed} failed in {secs:.1} s = {:.0} req/s{}; latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        shared.args.scenario,
        ok as f64 / secs,
        if items > 0 {
            format!(" ({:.0} interactions/s)", items as f64 / secs)
        } else {
            String::new()
        },
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
    );
    println!(
        "  machine stalls (a {} thread woken every {} ms, late by over {} ms): {}, {:.1} ms in all = {:.2} % of the run, longest {:.1} ms",
        if stalls.realtime {
            "real-time"
        } else {
            "normal-priority (so counting waits for a busy core too)"
        },
        PROBE_EVERY.as_millis(),
        STALL_OVER.as_millis(),
        stalls.count,
        stalls.total.as_secs_f64() * 1e3,
        stalls.share() * 100.0,
        stalls.longest.as_secs_f64() * 1e3,
    );
    let build_ms = shared.build_nanos.load(Ordering::Relaxed) as f64 / 1e6;
    let body_bytes = shared.body_bytes.load(Ordering::Relaxed);
    if matches!(shared.args.scenario, Scenario::Batch) {
        println!(
            "  bodies ({:?}): {:.0} bytes each, built in {build_ms:.0} ms in all ({:.1} % of one core over the run)",
            shared.args.format,
            body_bytes as f64 / (ok + failed).max(1) as f64,
            build_ms / 10.0 / secs,
        );
    }
    if shared.args.json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": format!("{:?}", shared.args.scenario).to_lowercase(),
                "format": format!("{:?}", shared.args.format).to_lowercase(),
                "body_bytes": body_bytes, "build_ms": build_ms,
                "mode": mode, "ok": ok, "failed": failed, "seconds": secs,
                "requests_per_sec": ok as f64 / secs,
                "interactions_per_sec": items as f64 / secs,
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999),
                "stalls": stalls.count, "stall_ms": stalls.total.as_secs_f64() * 1e3,
                "stall_share": stalls.share(),
                "stall_longest_ms": stalls.longest.as_secs_f64() * 1e3,
                "stall_probe_realtime": stalls.realtime,
            })
        );
    }
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}
