//! Reading batch files (Parquet, CSV, NDJSON, told apart by extension) into the
//! normalised frames the batch evaluator works on. Every row goes through the
//! same validation as the HTTP API. Real files have rows that cannot be used
//! (SPEC §2.4a): they are skipped and counted, and the [`LoadReport`] groups
//! them by field and reason with a few example rows — a file with 24,000 bad
//! rows gives a report of a few lines, not 24,000. A missing column or a
//! column of the wrong type fails the whole file, naming file and column.
//!
//! Rows are numbered from 1, the first data row (a CSV file's line 2, an
//! NDJSON file's line 1; blank NDJSON lines are not rows but keep the line
//! numbering).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use polars::prelude::*;

use features::catalog::{Catalog, CatalogItem};
use features::interaction::{CheckedInteraction, Interaction, RawInteraction, RawTimestamp};
use features::labels::LabelRow;
use features::validation::{ProblemGroup, ProblemSummary, ValidationErrors};

use crate::{Error, Result};

/// Column names of the normalised interaction frame.
pub mod cols {
    pub const ID: &str = "id";
    pub const USER: &str = "user";
    pub const KIND: &str = "kind";
    pub const TS: &str = "ts";
    pub const TARGET: &str = "target";
    pub const AMOUNT: &str = "amount";
    pub const QUANTITY: &str = "quantity";
}

/// Most kinds of problem a [`LoadReport`] prints, per section (skipped rows,
/// noted rows); the rest are summed up in one line.
pub const MAX_REPORTED_GROUPS: usize = 8;

/// What reading a file found: how many rows, which were skipped and why,
/// which were used with a note (a catalog price taken as unknown), grouped
/// by field and reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Data rows read.
    pub rows: usize,
    /// Rows not used.
    pub skipped: usize,
    /// Why rows were skipped (a row with several problems is in several
    /// groups).
    pub problems: ProblemSummary,
    /// Rows used, with something worth knowing about them.
    pub notes: ProblemSummary,
}

impl LoadReport {
    /// Rows used.
    pub fn used(&self) -> usize {
        self.rows - self.skipped
    }

    fn skip(&mut self, row: usize, errors: &ValidationErrors) {
        self.skipped += 1;
        self.problems.add(row, errors);
    }

    fn skip_one(&mut self, row: usize, field: &str, message: &str) {
        self.skipped += 1;
        self.problems.add_one(row, field, message);
    }

    /// The report in a few lines: totals, then the most frequent kinds of
    /// problem with their counts and first rows.
    pub fn lines(&self, what: &str) -> Vec<String> {
        let mut lines = vec![format!(
            "{what}: {} rows, {} used, {} skipped",
            thousands(self.rows as u64),
            thousands(self.used() as u64),
            thousands(self.skipped as u64)
        )];
        for (label, summary) in [("skipped", &self.problems), ("noted", &self.notes)] {
            let groups = summary.groups();
            for g in groups.iter().take(MAX_REPORTED_GROUPS) {
                lines.push(format!("  {label}: {}", describe_group(g)));
            }
            if groups.len() > MAX_REPORTED_GROUPS {
                let rest = &groups[MAX_REPORTED_GROUPS..];
                lines.push(format!(
                    "  {label}: … and {} more kinds of problem ({} rows)",
                    rest.len(),
                    thousands(rest.iter().map(|g| g.count as u64).sum())
                ));
            }
        }
        lines
    }
}

/// `field: reason — N rows (e.g. rows 3, 17, 230)`; a problem of one row is
/// shown with its value.
pub fn describe_group(g: &ProblemGroup) -> String {
    let rows: Vec<String> = g.examples.iter().map(usize::to_string).collect();
    if g.count == 1 {
        format!("{}: {} — row {}", g.field, g.example_message, rows.join(""))
    } else {
        let eg = if g.count > g.examples.len() {
            "e.g. "
        } else {
            ""
        };
        format!(
            "{}: {} — {} rows ({eg}rows {})",
            g.field,
            g.reason,
            thousands(g.count as u64),
            rows.join(", ")
        )
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// File formats, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    NdJson,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet" | "pq") => Ok(Format::Parquet),
            Some("csv") => Ok(Format::Csv),
            Some("ndjson" | "jsonl") => Ok(Format::NdJson),
            _ => Err(input_error(
                path,
                "unknown file type: use .parquet, .csv or .ndjson/.jsonl",
            )),
        }
    }
}

fn input_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Input {
        file: path.display().to_string(),
        message: message.into(),
    }
}

/// Calls `each(line_number, line)` for every non-blank line of an NDJSON
/// file (numbered from 1).
fn for_each_line(path: &Path, mut each: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| input_error(path, e.to_string()))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| input_error(path, e.to_string()))?;
        if !line.trim().is_empty() {
            each(i + 1, &line)?;
        }
    }
    Ok(())
}

/// Reads a Parquet or CSV file; CSV columns are all read as text and typed
/// afterwards, so that ids such as `007` keep their leading zeros.
fn read_frame(path: &Path, format: Format) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| input_error(path, e.to_string()))?;
    let frame = match format {
        Format::Parquet => ParquetReader::new(file).finish(),
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .into_reader_with_file_handle(file)
            .finish(),
        Format::NdJson => unreachable!("NDJSON is parsed row by row"),
    };
    frame.map_err(|e| input_error(path, e.to_string()))
}

/// Rows per slice when reading Parquet: the raw text columns of a whole
/// 10M-row file would take gigabytes next to the normalised frame.
const PARQUET_SLICE_ROWS: usize = 1 << 20;

/// Calls `each(offset, frame)` over a Parquet file slice by slice (`offset`:
/// data rows before the slice), or once with a whole CSV file.
fn for_each_frame(
    path: &Path,
    format: Format,
    mut each: impl FnMut(usize, DataFrame) -> Result<()>,
) -> Result<()> {
    if format != Format::Parquet {
        return each(0, read_frame(path, format)?);
    }
    let open = || File::open(path).map_err(|e| input_error(path, e.to_string()));
    let rows = ParquetReader::new(open()?)
        .num_rows()
        .map_err(|e| input_error(path, e.to_string()))?;
    let mut offset = 0;
    loop {
        let df = ParquetReader::new(open()?)
            .with_slice(Some((offset, PARQUET_SLICE_ROWS)))
            .finish()
            .map_err(|e| input_error(path, e.to_string()))?;
        each(offset, df)?;
        offset += PARQUET_SLICE_ROWS;
        if offset >= rows {
            return Ok(());
        }
    }
}

/// A typed view of one input column.
struct Columns<'a> {
    path: &'a Path,
    df: &'a DataFrame,
}

impl<'a> Columns<'a> {
    fn get(&self, name: &str, required: bool) -> Result<Option<&'a Column>> {
        match self.df.column(name) {
            Ok(c) => Ok(Some(c)),
            Err(_) if !required => Ok(None),
            Err(_) => Err(input_error(self.path, format!("missing column {name:?}"))),
        }
    }

    /// Text column; integer columns (ids written as numbers) become text.
    fn text(&self, name: &str, required: bool) -> Result<Option<StringChunked>> {
        let Some(c) = self.get(name, required)? else {
            return Ok(None);
        };
        match c.dtype() {
            DataType::String => Ok(Some(c.str()?.clone())),
            DataType::Null => Ok(Some(c.cast(&DataType::String)?.str()?.clone())),
            d if d.is_integer() => Ok(Some(c.cast(&DataType::String)?.str()?.clone())),
            d => Err(input_error(
                self.path,
                format!("column {name:?} must hold text, found {d}"),
            )),
        }
    }

    /// Numeric column; text (from CSV) must parse as numbers.
    fn number(&self, name: &str, required: bool) -> Result<Option<Float64Chunked>> {
        let Some(c) = self.get(name, required)? else {
            return Ok(None);
        };
        let d = c.dtype();
        if !(d.is_primitive_numeric() || matches!(d, DataType::String | DataType::Null)) {
            return Err(input_error(
                self.path,
                format!("column {name:?} must hold numbers, found {d}"),
            ));
        }
        let cast = c.strict_cast(&DataType::Float64).map_err(|_| {
            input_error(
                self.path,
                format!("column {name:?} holds values that are not numbers"),
            )
        })?;
        Ok(Some(cast.f64()?.clone()))
    }
}

/// One row's timestamp, as the validation path wants it.
enum TimestampColumn {
    Text(StringChunked),
    Micros(Int64Chunked),
}

impl TimestampColumn {
    fn read(columns: &Columns<'_>) -> Result<TimestampColumn> {
        let Some(c) = columns.get("timestamp", true)? else {
            unreachable!("required column")
        };
        match c.dtype() {
            DataType::String => Ok(TimestampColumn::Text(c.str()?.clone())),
            DataType::Datetime(_, _) => {
                // Time-zone-less datetimes are taken as UTC.
                let micros = c.cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
                Ok(TimestampColumn::Micros(
                    micros.datetime()?.physical().clone(),
                ))
            }
            d => Err(input_error(
                columns.path,
                format!("column \"timestamp\" must hold RFC 3339 text or datetimes, found {d}"),
            )),
        }
    }

    fn get(&self, row: usize) -> RawTimestamp<'_> {
        match self {
            TimestampColumn::Text(c) => match c.get(row) {
                Some(t) => RawTimestamp::Text(Cow::Borrowed(t)),
                None => RawTimestamp::Missing,
            },
            TimestampColumn::Micros(c) => match c.get(row) {
                Some(m) => RawTimestamp::Micros(m),
                None => RawTimestamp::Missing,
            },
        }
    }
}

/// Accumulates valid rows into the normalised interaction frame. Text goes
/// straight into Arrow string views (no `String` per value): at 10M rows the
/// difference is gigabytes.
struct InteractionColumns {
    id: StringChunkedBuilder,
    user: StringChunkedBuilder,
    kind: Vec<i32>,
    ts: Vec<i64>,
    target: StringChunkedBuilder,
    amount: Vec<Option<f64>>,
    quantity: Vec<Option<f64>>,
}

impl InteractionColumns {
    fn new() -> InteractionColumns {
        InteractionColumns {
            id: StringChunkedBuilder::new(cols::ID.into(), 0),
            user: StringChunkedBuilder::new(cols::USER.into(), 0),
            kind: Vec::new(),
            ts: Vec::new(),
            target: StringChunkedBuilder::new(cols::TARGET.into(), 0),
            amount: Vec::new(),
            quantity: Vec::new(),
        }
    }

    fn push(&mut self, raw: &RawInteraction<'_>, checked: &CheckedInteraction<'_>) {
        self.id.append_value(checked.id.as_ref());
        self.kind.push(checked.kind.index() as i32);
        self.ts.push(checked.timestamp_micros);
        self.user
            .append_value(raw.actor_id.as_deref().unwrap_or_default());
        self.target
            .append_value(raw.target_id.as_deref().unwrap_or_default());
        self.amount.push(raw.amount);
        self.quantity.push(raw.quantity);
    }

    fn finish(self) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            self.id.finish().into_column(),
            self.user.finish().into_column(),
            Column::new(cols::KIND.into(), self.kind),
            Column::new(cols::TS.into(), self.ts),
            self.target.finish().into_column(),
            Column::new(cols::AMOUNT.into(), self.amount),
            Column::new(cols::QUANTITY.into(), self.quantity),
        ])?)
    }
}

/// The normalised frame of already validated interactions (serving's stored
/// log, tests).
pub fn frame_from_interactions<'a>(
    interactions: impl IntoIterator<Item = &'a Interaction>,
) -> Result<DataFrame> {
    let mut out = InteractionColumns::new();
    for i in interactions {
        out.id.append_value(&i.id);
        out.user.append_value(&i.actor.id);
        out.kind.push(i.kind.index() as i32);
        out.ts.push(i.timestamp_micros());
        out.target.append_value(&i.target.id);
        out.amount.push(i.value.as_ref().map(|v| v.amount));
        out.quantity.push(i.quantity);
    }
    out.finish()
}

/// Reads an interaction log (SPEC §2.1 columnar or NDJSON form) into the
/// normalised frame: `id` (given or content-derived), `user`, `kind`
/// (index in [`features::InteractionType::ALL`]), `ts` (µs since epoch),
/// `target`, `amount`, `quantity`.
pub fn read_interactions(path: &Path) -> Result<(DataFrame, LoadReport)> {
    let mut out = InteractionColumns::new();
    let report = visit_interactions(path, |_, raw, checked| {
        out.push(raw, checked);
        Ok(())
    })?;
    Ok((out.finish()?, report))
}

/// Calls `each(row, raw, checked)` for every valid row of an interaction
/// log, in file order, and reports the others: the one reading and
/// validating path behind [`read_interactions`] and tools that stream a log
/// elsewhere (`micro-train backfill`). An error from `each` stops the reading.
pub fn visit_interactions(
    path: &Path,
    mut each: impl FnMut(usize, &RawInteraction<'_>, &CheckedInteraction<'_>) -> Result<()>,
) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut visit = |report: &mut LoadReport, row: usize, raw: &RawInteraction<'_>| {
        report.rows += 1;
        match raw.check() {
            Ok(checked) => each(row, raw, &checked),
            Err(e) => {
                report.skip(row, &e);
                Ok(())
            }
        }
    };
    match Format::of(path)? {
        Format::NdJson => for_each_line(path, |row, line| {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) => match RawInteraction::from_json(&value) {
                    Ok(raw) => visit(&mut report, row, &raw)?,
                    Err(e) => {
                        report.rows += 1;
                        report.skip(row, &e);
                    }
                },
                Err(e) => {
                    report.rows += 1;
                    report.skip_one(row, "$", &format!("not JSON: {e}"));
                }
            }
            Ok(())
        })?,
        format => for_each_frame(path, format, |offset, df| {
            let c = Columns { path, df: &df };
            let id = c.text("id", false)?;
            let kind = c.text("type", true)?;
            let timestamp = TimestampColumn::read(&c)?;
            let mut entity = Vec::new();
            for name in [
                "origin_id",
                "origin_type",
                "actor_id",
                "actor_type",
                "target_id",
                "target_type",
            ] {
                entity.push(c.text(name, true)?.unwrap_or_default());
            }
            let value = c.number("value", false)?;
            let currency = c.text("currency", false)?;
            let quantity = c.number("quantity", false)?;
            fn text(col: &Option<StringChunked>, row: usize) -> Option<Cow<'_, str>> {
                col.as_ref().and_then(|c| c.get(row)).map(Cow::Borrowed)
            }
            let ent = |i: usize, row: usize| entity[i].get(row).map(Cow::Borrowed);
            for row in 0..df.height() {
                let raw = RawInteraction {
                    id: text(&id, row),
                    kind: text(&kind, row),
                    timestamp: timestamp.get(row),
                    origin_id: ent(0, row),
                    origin_type: ent(1, row),
                    actor_id: ent(2, row),
                    actor_type: ent(3, row),
                    target_id: ent(4, row),
                    target_type: ent(5, row),
                    amount: value.as_ref().and_then(|c| c.get(row)),
                    currency: text(&currency, row),
                    quantity: quantity.as_ref().and_then(|c| c.get(row)),
                };
                visit(&mut report, offset + row + 1, &raw)?;
            }
            Ok(())
        })?,
    }
    Ok(report)
}

/// Reads a catalog file (SPEC §2.4, §2.4a). Rows that cannot be used (no
/// target id or type, a target id seen before) are skipped and reported; a
/// missing or unusable price or category leaves the item without that
/// signal and is noted. Only a missing required column or a column of the
/// wrong type fails the file.
pub fn read_catalog(path: &Path) -> Result<(Catalog, LoadReport)> {
    let mut report = LoadReport::default();
    let mut rows: Vec<(usize, CatalogItem)> = Vec::new();
    match Format::of(path)? {
        Format::NdJson => for_each_line(path, |row, line| {
            report.rows += 1;
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) => match catalog_item_from_json(&value) {
                    Ok(item) => rows.push((row, item)),
                    Err(e) => report.skip(row, &e),
                },
                Err(e) => report.skip_one(row, "$", &format!("not JSON: {e}")),
            }
            Ok(())
        })?,
        format => {
            let df = read_frame(path, format)?;
            let c = Columns { path, df: &df };
            let target_id = c.text("target_id", true)?.unwrap_or_default();
            let target_type = c.text("target_type", true)?.unwrap_or_default();
            let category = c.text("category", true)?.unwrap_or_default();
            let price = c.number("price", false)?;
            let subcategory = c.text("subcategory", false)?;
            let brand = c.text("brand", false)?;
            let topics = read_topics(&c)?;
            let owned = |col: &Option<StringChunked>, row: usize| {
                col.as_ref().and_then(|c| c.get(row)).map(str::to_owned)
            };
            report.rows = df.height();
            rows = (0..df.height())
                .map(|row| {
                    let item = CatalogItem {
                        target_id: target_id.get(row).unwrap_or_default().to_owned(),
                        target_type: target_type.get(row).unwrap_or_default().to_owned(),
                        category: category.get(row).map(str::to_owned),
                        price: price.as_ref().and_then(|p| p.get(row)),
                        subcategory: owned(&subcategory, row),
                        brand: owned(&brand, row),
                        topics: topics.get(row).cloned().unwrap_or_default(),
                    };
                    (row + 1, item)
                })
                .collect();
        }
    }
    let catalog = Catalog::from_rows(rows, &mut report.problems, &mut report.notes);
    report.skipped = report.rows - catalog.len();
    Ok((catalog, report))
}

/// One catalog item from its JSON shape, naming fields of the wrong type.
fn catalog_item_from_json(value: &serde_json::Value) -> Result<CatalogItem, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let Some(obj) = value.as_object() else {
        errors.push("$", "must be a JSON object");
        return Err(errors);
    };
    let mut text = |key: &str| match obj.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(_) => {
            errors.push(key, "must be a string");
            None
        }
    };
    let target_id = text("target_id").unwrap_or_default();
    let target_type = text("target_type").unwrap_or_default();
    let category = text("category");
    let subcategory = text("subcategory");
    let brand = text("brand");
    let price = match obj.get("price") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(_) => {
            errors.push("price", "must be a number");
            None
        }
    };
    let topics = match obj.get("topics") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => CatalogItem::split_topics(s),
        Some(serde_json::Value::Array(a)) if a.iter().all(|t| t.is_string()) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.push("topics", "must be a list of text or ';'-separated text");
            Vec::new()
        }
    };
    errors.into_result(|| CatalogItem {
        target_id,
        target_type,
        category,
        price,
        subcategory,
        brand,
        topics,
    })
}

/// Topics as a list column, or `;`-separated text (CSV).
fn read_topics(c: &Columns<'_>) -> Result<Vec<Vec<String>>> {
    list_or_text(c, "topics")
}

fn list_or_text(c: &Columns<'_>, name: &str) -> Result<Vec<Vec<String>>> {
    let Some(col) = c.get(name, false)? else {
        return Ok(Vec::new());
    };
    match col.dtype() {
        DataType::String | DataType::Null => Ok(col
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|t| t.map(CatalogItem::split_topics).unwrap_or_default())
            .collect()),
        DataType::List(inner) if matches!(**inner, DataType::String | DataType::Null) => {
            let list = col.list()?;
            let mut rows = Vec::with_capacity(list.len());
            for row in 0..list.len() {
                let values = match list.get_as_series(row) {
                    Some(s) => s
                        .cast(&DataType::String)?
                        .str()?
                        .iter()
                        .flatten()
                        .map(str::to_owned)
                        .collect(),
                    None => Vec::new(),
                };
                rows.push(values);
            }
            Ok(rows)
        }
        d => Err(input_error(
            c.path,
            format!("column {name:?} must hold a list of text or ';'-separated text, found {d}"),
        )),
    }
}

/// Reads a labels file (SPEC §2.5): `user_id` plus any of `spending_class`,
/// `life_stage`, `topics`. Invalid rows are skipped and reported.
pub fn read_labels(path: &Path) -> Result<(Vec<LabelRow>, LoadReport)> {
    let mut report = LoadReport::default();
    let mut labels = Vec::new();
    match Format::of(path)? {
        Format::NdJson => for_each_line(path, |row, line| {
            report.rows += 1;
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    report.skip_one(row, "$", &format!("not JSON: {e}"));
                    return Ok(());
                }
            };
            let topics = value["topics"].as_array().map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            });
            let user = match &value["user_id"] {
                serde_json::Value::Number(n) => Some(n.to_string()),
                v => v.as_str().map(str::to_owned),
            };
            match LabelRow::parse(
                user.as_deref(),
                value["spending_class"].as_i64(),
                value["life_stage"].as_str(),
                topics,
            ) {
                Ok(l) => labels.push(l),
                Err(e) => report.skip(row, &e),
            }
            Ok(())
        })?,
        format => {
            let df = read_frame(path, format)?;
            let c = Columns { path, df: &df };
            let user = c.text("user_id", true)?.unwrap_or_default();
            let class = c.number("spending_class", false)?;
            let stage = c.text("life_stage", false)?;
            let topics = list_or_text(&c, "topics")?;
            let topic_cells = c.get("topics", false)?;
            for (row, row_topics) in topics
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat(None))
                .take(df.height())
                .enumerate()
            {
                report.rows += 1;
                // A null cell means "no label", an empty list "no topics".
                let topic_row = row_topics.filter(|_| {
                    topic_cells
                        .and_then(|col| col.get(row).ok())
                        .is_some_and(|v| !v.is_null())
                });
                let class_row = class.as_ref().and_then(|c| c.get(row));
                if let Some(v) = class_row {
                    if v.fract() != 0.0 {
                        report.skip_one(
                            row + 1,
                            "spending_class",
                            &format!("must be 1 to 5, got \"{v}\""),
                        );
                        continue;
                    }
                }
                match LabelRow::parse(
                    user.get(row),
                    class_row.map(|v| v as i64),
                    stage.as_ref().and_then(|c| c.get(row)),
                    topic_row,
                ) {
                    Ok(l) => labels.push(l),
                    Err(e) => report.skip(row + 1, &e),
                }
            }
        }
    }
    Ok((labels, report))
}

/// Reads a users file (the columns `micro-train generate` writes to
/// `users.parquet`: `user_id`, `email`, `name`, `gender`, `birth_year`,
/// `adults`, `kids`, `marital_status`, `income_band`; others, such as
/// `registered_at`, are ignored) into registration bodies of SPEC §2.3
/// (`userId`, `email`, `name`, …, nulls left out), each with its row
/// number, for tools that register a file's users through the API
/// (`micro-train backfill`). The server judges the fields; only a row
/// without a `user_id` is skipped here, because a user registered under an
/// id the server makes up would never meet their interactions.
pub fn read_users(path: &Path) -> Result<(Vec<(usize, serde_json::Value)>, LoadReport)> {
    use serde_json::{Map, Value};
    const TEXT: [(&str, &str); 6] = [
        ("user_id", "userId"),
        ("email", "email"),
        ("name", "name"),
        ("gender", "gender"),
        ("marital_status", "maritalStatus"),
        ("income_band", "incomeBand"),
    ];
    const NUMBERS: [(&str, &str); 3] = [
        ("birth_year", "birthYear"),
        ("adults", "adults"),
        ("kids", "kids"),
    ];
    let mut report = LoadReport::default();
    let mut users = Vec::new();
    let mut keep = |report: &mut LoadReport, row: usize, body: Map<String, Value>| {
        report.rows += 1;
        match body.get("userId") {
            Some(Value::String(id)) if !id.trim().is_empty() => {
                users.push((row, Value::Object(body)))
            }
            _ => report.skip_one(row, "user_id", "is required"),
        }
    };
    match Format::of(path)? {
        Format::NdJson => for_each_line(path, |row, line| {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(obj)) => {
                    let mut body = Map::new();
                    for (from, to) in TEXT.iter().chain(&NUMBERS) {
                        match obj.get(*from) {
                            None | Some(Value::Null) => {}
                            // The seed's numeric ids are kept as strings.
                            Some(Value::Number(n)) if *from == "user_id" => {
                                body.insert((*to).into(), Value::String(n.to_string()));
                            }
                            Some(v) => {
                                body.insert((*to).into(), v.clone());
                            }
                        }
                    }
                    keep(&mut report, row, body);
                }
                Ok(_) => {
                    report.rows += 1;
                    report.skip_one(row, "$", "must be a JSON object");
                }
                Err(e) => {
                    report.rows += 1;
                    report.skip_one(row, "$", &format!("not JSON: {e}"));
                }
            }
            Ok(())
        })?,
        format => {
            let df = read_frame(path, format)?;
            let c = Columns { path, df: &df };
            let mut text = Vec::new();
            for (i, (from, to)) in TEXT.iter().enumerate() {
                // user_id and email are required columns.
                if let Some(col) = c.text(from, i < 2)? {
                    text.push((*to, col));
                }
            }
            let mut numbers = Vec::new();
            for (from, to) in NUMBERS {
                if let Some(col) = c.number(from, false)? {
                    numbers.push((to, col));
                }
            }
            for row in 0..df.height() {
                let mut body = Map::new();
                for (key, col) in &text {
                    if let Some(v) = col.get(row) {
                        body.insert((*key).into(), Value::from(v));
                    }
                }
                for (key, col) in &numbers {
                    if let Some(v) = col.get(row) {
                        // Whole numbers as integers: the API takes a
                        // birth year of 1980, not 1980.0.
                        let n = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                            Value::from(v as i64)
                        } else {
                            Value::from(v)
                        };
                        body.insert((*key).into(), n);
                    }
                }
                keep(&mut report, row + 1, body);
            }
        }
    }
    Ok((users, report))
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
