//! Reading batch files: the three formats agree, bad rows are skipped and
//! reported by row and field without losing the good ones, and structural
//! problems fail with the file and column named.

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
    assert_eq!(report.invalid, 2);
    assert!(
        report.errors[0].starts_with("row 2: type: unknown value \"BUY\""),
        "{:?}",
        report.errors
    );
    assert!(report.errors[1].contains("row 3: "), "{:?}", report.errors);
    assert!(
        report.errors[1].contains("timestamp: not RFC 3339"),
        "{:?}",
        report.errors
    );
    assert!(
        report.errors[1].contains("target.id: is required"),
        "{:?}",
        report.errors
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
    assert_eq!((report.rows, report.invalid), (5, 2));
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
    assert_eq!((report.rows, report.invalid), (5, 2));
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
fn catalogs_read_from_every_format_and_bad_rows_fail_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = write(
        dir.path(),
        "catalog.csv",
        "target_id,target_type,category,price,topics\nsku-1,product,baby,19.99,outdoor; eco\nsku-2,product,toys,5,\n",
    );
    let catalog = read_catalog(&csv).expect("csv catalog");
    assert_eq!(catalog.get("sku-1").unwrap().topics, ["outdoor", "eco"]);
    assert!(catalog.get("sku-2").unwrap().topics.is_empty());

    let ndjson = write(
        dir.path(),
        "catalog.ndjson",
        "{\"target_id\":\"sku-1\",\"target_type\":\"product\",\"category\":\"baby\",\"price\":19.99,\"topics\":[\"outdoor\",\"eco\"]}\n",
    );
    assert_eq!(
        read_catalog(&ndjson).expect("ndjson").get("sku-1"),
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
        read_catalog(&parquet).expect("parquet").get("sku-1"),
        catalog.get("sku-1")
    );

    let bad = write(
        dir.path(),
        "bad.csv",
        "target_id,target_type,category,price\nsku-1,product,baby,-3\n",
    );
    let err = read_catalog(&bad).expect_err("negative price").to_string();
    assert!(
        err.contains("bad.csv") && err.contains("row 0: price"),
        "{err}"
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
    assert_eq!(report.invalid, 1, "{:?}", report.errors);
    assert!(report.errors[0].contains("spending_class") && report.errors[0].contains("life_stage"));
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0].life_stage, Some(LifeStage::Senior));
    assert_eq!(
        labels[0].topics.as_deref(),
        Some(&["garden".to_string(), "books".to_string()][..])
    );
    assert_eq!(labels[1].spending_class, None);
}
