//! What reading a batch costs the server, NDJSON against protobuf: the
//! validated interactions of one `POST /v1/interactions` body, from its
//! bytes, the way the handler reads each format (NDJSON lines straight from
//! their text, `Interaction::from_json_text`; protobuf through
//! `serving::wire::decode_batch`). Storing and folding, the rest of the
//! ingest path, are the same for both and not timed here.
//!
//! `cargo bench -p serving --bench wire_formats -- [BATCH] [ROUNDS]`
//! (defaults 1,000 interactions, 2,000 rounds of each format, alternating).

use std::time::Instant;

use chrono::DateTime;
use features::{Entity, Interaction, InteractionType, Money};
use proto::{v1, Message};

// The allocator micro-serve runs with: reading a batch is mostly allocation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Interactions shaped as micro-load's (ids, shops, users, targets,
/// a value on purchases).
fn interactions(n: u64) -> Vec<Interaction> {
    let entity = |id: String, kind: &str| Entity {
        id,
        kind: kind.to_owned(),
    };
    (0..n)
        .map(|i| {
            let kind = InteractionType::ALL[(i % 5) as usize];
            Interaction {
                id: format!("bench-{i}"),
                kind,
                timestamp: DateTime::from_timestamp(1_790_000_000 + (i as i64) * 61, 0)
                    .unwrap_or_default(),
                origin: entity(format!("shop-{}", i % 7), "shop"),
                actor: entity(
                    format!("user-{}", i.wrapping_mul(2_654_435_761) % 100_000),
                    "user",
                ),
                target: entity(format!("sku-{:06}", i % 200), "product"),
                value: (kind == InteractionType::Purchase).then(|| Money {
                    amount: (5 + i % 200) as f64 + 0.5,
                    currency: "USD".to_owned(),
                }),
                quantity: None,
            }
        })
        .collect()
}

fn read_ndjson(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Interaction::from_json_text(l).map(|r| r.is_ok()))
        .filter(|ok| *ok == Some(true))
        .count()
}

fn read_protobuf(body: &[u8]) -> usize {
    serving::wire::decode_batch(body)
        .map(|items| items.iter().filter(|r| r.is_ok()).count())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch = args.first().copied().unwrap_or(1_000);
    let rounds = args.get(1).copied().unwrap_or(2_000);
    let items = interactions(batch);
    let mut ndjson = Vec::new();
    for i in &items {
        ndjson.extend(serde_json::to_vec(i).unwrap_or_default());
        ndjson.push(b'\n');
    }
    let protobuf = items
        .iter()
        .collect::<v1::InteractionBatch>()
        .encode_to_vec();
    assert_eq!(read_ndjson(&ndjson), items.len(), "every NDJSON line valid");
    assert_eq!(
        read_protobuf(&protobuf),
        items.len(),
        "every protobuf item valid"
    );
    let (mut json_ms, mut proto_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        std::hint::black_box(read_ndjson(std::hint::black_box(&ndjson)));
        json_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        std::hint::black_box(read_protobuf(std::hint::black_box(&protobuf)));
        proto_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let per_thousand = 1_000.0 / batch as f64;
    println!(
        "{batch} interactions a body, median of {rounds} reads each:\n  \
         NDJSON   {:>7} bytes, {:.3} ms per 1,000 interactions\n  \
         protobuf {:>7} bytes, {:.3} ms per 1,000 interactions",
        ndjson.len(),
        median(json_ms) * per_thousand,
        protobuf.len(),
        median(proto_ms) * per_thousand,
    );
}
