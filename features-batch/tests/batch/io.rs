//! Reading batch files: the three formats agree, bad rows are skipped and
//! reported by field and reason without losing the good ones, real-world
//! rows (missing prices, returns, void lines, thousands of bad rows) are
//! read as SPEC §2.4a says, and structural problems fail with the file and
//! column named.

use std::io::Write;
use std::path::{Path, PathBuf};

use features::LifeStage;
use features_batch::io::{read_catalog, read_interactions, read_labels, Format};
use features_batch::polars::prelude::*;

const CSV: &str = "\
id,type,timestamp,origin_id,origin_type,actor_id,actor_type,target_id,target_type,value,currency,quantity
a1,PURCHACE,2026-03-01T10:00:00Z,store-1,pos,007,user,sku-1,product,12.5,USD,2
,VIEW,2026-03-01T11:00:00+01:00,web,site,007,user,sku-2,product,,,
a3,BUY,2026-03-01T12:00:00Z,web,site,008,user,sku-2,product,,,
a4,SAVE,not-a-time,web,site,008,user,,product,,,
a5,INQUIRY,2026-03-02T12:00:00Z,web,site,008,user,sku-9,product,,,
";

const NDJSON: &str = r#"{"id":"a1","type":"PURCHACE","timestamp":"2026-03-01T10:00:00Z","origin":{"id":"store-1","type":"pos"},"actor":{"id":"007","type":"user"},"target":{"id":"sku-1","type":"product"},"value":{"amount":12.5,"currency":"USD"},"quantity":2}
{"type":"VIEW","timestamp":"2026-03-01T11:00:00+01:00","origin":{"id":"web","type":"site"},"actor":{"id":"007","type":"user"},"target":{"id":"sku-2","type":"product"}}
{"id":"a3","type":"BUY","timestamp":"2026-03-01T12:00:00Z","origin":{"id":"web","type":"site"},"actor":{"id":"008","type":"user"},"target":{"id":"sku-2","type":"product"}}
{"id":"a4","type":"SAVE","timestamp":"not-a-time","origin":{"id":"web","type":"site"},"actor":{"id":"008","type":"user"},"target":{"id":"","type":"product"}}

{"id":"a5","type":"INQUIRY","timestamp":"2026-03-02T12:00:00Z","origin":{"id":"web","type":"site"},"actor":{"id":"008","type":"user"},"target":{"id":"sku-9","type":"product"}}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write");
    path
}

fn write_parquet(dir: &Path, name: &str, df: &mut DataFrame) -> PathBuf {
    let path = dir.join(name);
    ParquetWriter::new(std::fs::File::create(&path).expect("create"))
        .finish(df)
        .expect("parquet");
    path
}

#[test]
fn csv_ndjson_and_parquet_give_the_same_frame_and_report_bad_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(dir.path(), "log.csv", CSV);
    let ndjson = write(dir.path(), "log.ndjson", NDJSON);
    let (from_csv, report) = read_interactions(&csv).expect("csv");
    assert_eq!(report.rows, 5);
    assert_eq!(report.skipped, 2);
    let problems: Vec<(&str, &[usize])> = report
        .problems
        .groups()
        .iter()
        .map(|g| (g.field.as_str(), &g.examples[..]))
        .collect();
    // data rows are numbered from 1: the bad ones are the third and fourth
    assert_eq!(
        problems,
        [
            ("target.id", &[4][..]),
            ("timestamp", &[4][..]),
            ("type", &[3][..])
        ]
    );
    let text = report.lines("log.csv").join("\n");
    assert!(
        text.contains("type: unknown value \"BUY\" (expected one of PURCHACE, SAVE, INQUERY, VIEW, SHARE) — row 3"),
        "{text}"
    );
    assert!(
        text.contains("timestamp: not RFC 3339: \"not-a-time\" — row 4"),
        "{text}"
    );
    // the good rows are all kept, ids kept as text with leading zeros
    assert_eq!(from_csv.height(), 3);
    let users: Vec<_> = from_csv
        .column("user")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(users, ["007", "007", "008"]);
    let ids: Vec<_> = from_csv
        .column("id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids[0], "a1");
    assert!(ids[1].starts_with("ix_"), "content id derived: {ids:?}");
    let ts = from_csv.column("ts").unwrap().i64().unwrap();
    // 11:00+01:00 is 10:00Z
    assert_eq!(ts.get(1), Some(1_772_359_200_000_000));

    let (from_ndjson, report) = read_interactions(&ndjson).expect("ndjson");
    assert_eq!((report.rows, report.skipped), (5, 2));
    // NDJSON rows are line numbers: the blank line 5 is not a row
    let ndjson_rows: Vec<usize> = report
        .problems
        .groups()
        .iter()
        .flat_map(|g| g.examples.clone())
        .collect();
    assert_eq!(ndjson_rows, [4, 4, 3]);
    assert!(
        from_csv.equals_missing(&from_ndjson),
        "{from_csv}\n{from_ndjson}"
    );

    // Parquet with a real datetime column and numeric types
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(csv.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let micros: Vec<Option<i64>> = df
        .column("timestamp")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|t| {
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|d| d.timestamp_micros())
        })
        .collect();
    let micros = Int64Chunked::new("timestamp".into(), micros)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    df.with_column(micros.into_column()).unwrap();
    let value = df
        .column("value")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap();
    df.with_column(value).unwrap();
    let parquet = write_parquet(dir.path(), "log.parquet", &mut df);
    let (from_parquet, report) = read_interactions(&parquet).expect("parquet");
    // the bad timestamp is null in the typed column: still one error for that row
    assert_eq!((report.rows, report.skipped), (5, 2));
    assert!(
        from_csv.equals_missing(&from_parquet),
        "{from_csv}\n{from_parquet}"
    );
}

#[test]
fn structural_problems_name_file_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = write(
        dir.path(),
        "missing.csv",
        "id,type,timestamp\na,VIEW,2026-01-01T00:00:00Z\n",
    );
    let err = read_interactions(&missing)
        .expect_err("missing columns")
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
    assert!(err.contains("missing column \"origin_id\""), "{err}");

    let bad_number = write(
        dir.path(),
        "bad.csv",
        "type,timestamp,origin_id,origin_type,actor_id,actor_type,target_id,target_type,value\n\
         VIEW,2026-01-01T00:00:00Z,o,t,a,t,x,t,twelve\n",
    );
    let err = read_interactions(&bad_number)
        .expect_err("bad value")
        .to_string();
    assert!(
        err.contains("bad.csv") && err.contains("column \"value\""),
        "{err}"
    );

    let mut typed = df!("type" => ["VIEW"], "timestamp" => [1i64], "origin_id" => ["o"], "origin_type" => ["t"],
        "actor_id" => ["a"], "actor_type" => ["t"], "target_id" => ["x"], "target_type" => ["t"]).unwrap();
    let path = write_parquet(dir.path(), "typed.parquet", &mut typed);
    let err = read_interactions(&path)
        .expect_err("integer timestamps are ambiguous")
        .to_string();
    assert!(
        err.contains("typed.parquet") && err.contains("column \"timestamp\""),
        "{err}"
    );

    let err = Format::of(Path::new("log.xlsx"))
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("log.xlsx"), "{err}");
}

#[test]
fn catalogs_read_from_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(
        dir.path(),
        "catalog.csv",
        "target_id,target_type,category,price,topics\nsku-1,product,baby,19.99,outdoor; eco\nsku-2,product,toys,5,\n",
    );
    let (catalog, report) = read_catalog(&csv).expect("csv catalog");
    assert_eq!((report.rows, report.skipped), (2, 0));
    assert_eq!(catalog.get("sku-1").unwrap().topics, ["outdoor", "eco"]);
    assert!(catalog.get("sku-2").unwrap().topics.is_empty());

    let ndjson = write(
        dir.path(),
        "catalog.ndjson",
        "{\"target_id\":\"sku-1\",\"target_type\":\"product\",\"category\":\"baby\",\"price\":19.99,\"topics\":[\"outdoor\",\"eco\"]}\n",
    );
    assert_eq!(
        read_catalog(&ndjson).expect("ndjson").0.get("sku-1"),
        catalog.get("sku-1")
    );

    let mut df = df!("target_id" => ["sku-1"], "target_type" => ["product"], "category" => ["baby"], "price" => [19.99]).unwrap();
    let topics = Series::new(
        "topics".into(),
        [Series::new("".into(), ["outdoor", "eco"])],
    );
    df.with_column(topics.into_column()).unwrap();
    let parquet = write_parquet(dir.path(), "catalog.parquet", &mut df);
    assert_eq!(
        read_catalog(&parquet).expect("parquet").0.get("sku-1"),
        catalog.get("sku-1")
    );

    // without a price column at all: every price unknown, items kept
    let no_prices = write(
        dir.path(),
        "no-prices.csv",
        "target_id,target_type,category\nsku-1,product,baby\n",
    );
    let (catalog, report) = read_catalog(&no_prices).expect("price is optional");
    assert_eq!((catalog.len(), report.skipped), (1, 0));
    assert_eq!(catalog.get("sku-1").unwrap().price, None);
}

/// A real catalog: a quarter of the items never sold (no price), some
/// priced 0, some without a category, some rows without an id, repeated
/// ids. What can be used is kept, and 92,000 rows with 24,000 bad ones give
/// a report of a few lines.
#[test]
fn a_real_catalog_keeps_what_it_can_and_reports_in_a_few_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("target_id,target_type,category,price,topics\n");
    for i in 0..92_000 {
        let (id, category, price) = match i % 23 {
            0..=4 => (format!("sku-{i}"), "toys", String::new()),
            5 => (format!("sku-{i}"), "toys", "0".to_owned()),
            6 => (format!("sku-{i}"), "", "4.5".to_owned()),
            7 if i % 2 == 0 => (String::new(), "toys", "4.5".to_owned()),
            8 => (format!("sku-{}", i - 8), "books", "9".to_owned()),
            _ => (format!("sku-{i}"), "books", "12.5".to_owned()),
        };
        text.push_str(&format!("{id},product,{category},{price},\n"));
    }
    let path = write(dir.path(), "catalog.csv", &text);
    let (catalog, report) = read_catalog(&path).expect("a real catalog is read");
    assert_eq!(report.rows, 92_000);
    let skipped = report.skipped;
    assert_eq!(catalog.len(), 92_000 - skipped);
    let groups = |s: &features::validation::ProblemSummary| -> Vec<(String, usize)> {
        s.groups()
            .iter()
            .map(|g| (g.field.clone(), g.count))
            .collect()
    };
    // 4,000 repeats of an earlier id and 2,000 rows without an id
    assert_eq!(
        groups(&report.problems),
        [
            ("target_id".to_owned(), 4_000),
            ("target_id".to_owned(), 2_000)
        ]
    );
    assert_eq!(skipped, 6_000);
    let notes = groups(&report.notes);
    assert_eq!(
        notes,
        [
            ("price".to_owned(), 20_000),
            ("category".to_owned(), 4_000),
            ("price".to_owned(), 4_000)
        ]
    );
    // unknown and placeholder prices are unknown; the items still count
    assert_eq!(catalog.get("sku-0").unwrap().price, None);
    assert_eq!(catalog.get("sku-5").unwrap().price, None);
    assert_eq!(catalog.get("sku-6").unwrap().category, None);
    assert_eq!(catalog.get("sku-6").unwrap().price, Some(4.5));
    // the first of repeated rows is kept
    assert_eq!(
        catalog.get("sku-0").unwrap().category.as_deref(),
        Some("toys")
    );
    let lines = report.lines("catalog.csv");
    assert!(lines.len() < 20, "{lines:#?}");
    assert_eq!(
        lines[0],
        "catalog.csv: 92,000 rows, 86,000 used, 6,000 skipped"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                == "  noted: price: missing: taken as unknown — 20,000 rows (e.g. rows 1, 2, 3)"),
        "{lines:#?}"
    );
}

/// Interaction rows of every real-world kind: returns (negative quantity),
/// refunds (negative amount), void lines (quantity 0), unknown targets and
/// duplicate rows are all kept; broken rows of 2,000 kinds of bad value are
/// skipped and reported in a few lines.
#[test]
fn real_interaction_rows_are_kept_and_thousands_of_bad_ones_summarised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = "id,type,timestamp,origin_id,origin_type,actor_id,actor_type,target_id,target_type,value,currency,quantity\n";
    let mut text = String::from(header);
    let good = [
        "r1,PURCHACE,2026-03-01T10:00:00Z,s,pos,u1,user,sku-1,product,25,USD,1",
        "r2,PURCHACE,2026-03-02T10:00:00Z,s,pos,u1,user,sku-1,product,-25,USD,-1",
        "r3,PURCHACE,2026-03-03T10:00:00Z,s,pos,u1,user,sku-1,product,-5,USD,1",
        "r4,PURCHACE,2026-03-04T10:00:00Z,s,pos,u1,user,coupon,coupon,0,USD,0",
        "r5,VIEW,2026-03-05T10:00:00Z,s,web,u1,user,nowhere,page,,,",
        "r5,VIEW,2026-03-05T10:00:00Z,s,web,u1,user,nowhere,page,,,",
    ];
    for row in good {
        text.push_str(row);
        text.push('\n');
    }
    for i in 0..2_000 {
        text.push_str(&format!(
            "b{i},PURCHASED{i},2026-03-01T10:00:00Z,s,pos,u2,user,sku-1,product,,,\n"
        ));
    }
    let path = write(dir.path(), "log.csv", &text);
    let (log, report) = read_interactions(&path).expect("read");
    assert_eq!(
        (report.rows, report.skipped, log.height()),
        (2_006, 2_000, 6)
    );
    let quantities: Vec<Option<f64>> = log
        .column("quantity")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        quantities[..4],
        [Some(1.0), Some(-1.0), Some(1.0), Some(0.0)]
    );
    let lines = report.lines("log.csv");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[1],
        "  skipped: type: unknown value \"…\" (expected one of PURCHACE, SAVE, INQUERY, VIEW, SHARE) — 2,000 rows (e.g. rows 7, 8, 9)"
    );
}

#[test]
fn labels_may_be_partial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(
        dir.path(),
        "labels.csv",
        "user_id,spending_class,life_stage,topics\nu1,3,senior,garden;books\nu2,,,\nu3,9,teen,\n",
    );
    let (labels, report) = read_labels(&csv).expect("labels");
    assert_eq!(report.skipped, 1, "{:?}", report.problems);
    let fields: Vec<(&str, &[usize])> = report
        .problems
        .groups()
        .iter()
        .map(|g| (g.field.as_str(), &g.examples[..]))
        .collect();
    assert_eq!(
        fields,
        [("life_stage", &[3][..]), ("spending_class", &[3][..])]
    );
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0].life_stage, Some(LifeStage::Senior));
    assert_eq!(
        labels[0].topics.as_deref(),
        Some(&["garden".to_string(), "books".to_string()][..])
    );
    assert_eq!(labels[1].spending_class, None);
}
