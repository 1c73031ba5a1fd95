//! `micro-train generate`: writes a [`synthetic`] world (catalog, users,
//! labels, interactions) to Parquet files, day by day so memory stays flat;
//! the files are byte-identical for a seed.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::*;
pub use synthetic::WorldParams;
use synthetic::{build_catalog, day_rows, declared_users, make_people, Person, Row, World};

use crate::write_parquet;

fn interactions_frame(
    world: &World,
    people: &[Person],
    rows: &[Row],
    day: u32,
) -> Result<DataFrame> {
    let ids: Vec<String> = rows.iter().map(|r| r.id(day)).collect();
    let targets: Vec<(String, &str)> = rows.iter().map(|r| r.target(world)).collect();
    let ts = Int64Chunked::from_vec("timestamp".into(), rows.iter().map(|r| r.ts).collect())
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    let df = DataFrame::new_infer_height(vec![
        Column::new("id".into(), ids),
        Column::new(
            "type".into(),
            rows.iter().map(Row::kind_name).collect::<Vec<_>>(),
        ),
        ts.into_column(),
        Column::new(
            "origin_id".into(),
            rows.iter().map(|r| r.origin().0).collect::<Vec<_>>(),
        ),
        Column::new(
            "origin_type".into(),
            rows.iter().map(|r| r.origin().1).collect::<Vec<_>>(),
        ),
        Column::new(
            "actor_id".into(),
            rows.iter()
                .map(|r| people[r.user as usize].id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("actor_type".into(), vec!["user"; rows.len()]),
        Column::new(
            "target_id".into(),
            targets.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "target_type".into(),
            targets.iter().map(|t| t.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "value".into(),
            rows.iter().map(|r| r.amount).collect::<Vec<_>>(),
        ),
        Column::new(
            "currency".into(),
            rows.iter()
                .map(|r| r.amount.map(|_| "USD"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "quantity".into(),
            rows.iter().map(|r| r.quantity).collect::<Vec<_>>(),
        ),
    ])?;
    Ok(df)
}

fn catalog_frame(world: &World) -> Result<DataFrame> {
    let topics: Vec<Series> = world
        .items
        .iter()
        .map(|i| Series::new("".into(), i.topics.clone()))
        .collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "target_id".into(),
            world
                .items
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("target_type".into(), vec!["product"; world.items.len()]),
        Column::new(
            "category".into(),
            world
                .items
                .iter()
                .map(|i| i.listed_category.then(|| world.category_name(i)))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "price".into(),
            world
                .items
                .iter()
                .map(|i| i.listed_price)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "subcategory".into(),
            world
                .items
                .iter()
                .map(|i| i.subcategory.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "brand".into(),
            world
                .items
                .iter()
                .map(|i| i.brand.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "tier".into(),
            world
                .items
                .iter()
                .map(|i| i32::from(i.tier))
                .collect::<Vec<_>>(),
        ),
        Column::new("topics".into(), topics),
    ])?)
}

fn users_frame(params: &WorldParams, people: &[Person]) -> Result<DataFrame> {
    let users = declared_users(params, people);
    let registered = Int64Chunked::from_vec(
        "registered_at".into(),
        users.iter().map(|u| u.registered_at).collect(),
    )
    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "user_id".into(),
            users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "email".into(),
            users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            users.iter().map(|u| u.name.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "gender".into(),
            users.iter().map(|u| u.gender).collect::<Vec<_>>(),
        ),
        Column::new(
            "birth_year".into(),
            users.iter().map(|u| u.birth_year).collect::<Vec<_>>(),
        ),
        Column::new(
            "adults".into(),
            users.iter().map(|u| u.adults).collect::<Vec<_>>(),
        ),
        Column::new(
            "kids".into(),
            users.iter().map(|u| u.kids).collect::<Vec<_>>(),
        ),
        Column::new(
            "marital_status".into(),
            users.iter().map(|u| u.marital_status).collect::<Vec<_>>(),
        ),
        Column::new(
            "income_band".into(),
            users.iter().map(|u| u.income_band).collect::<Vec<_>>(),
        ),
        registered.into_column(),
    ])?)
}

fn labels_frame(people: &[Person]) -> Result<DataFrame> {
    let topics: Vec<Series> = people
        .iter()
        .map(|p| Series::new("".into(), p.topics()))
        .collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "user_id".into(),
            people.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "spending_class".into(),
            people
                .iter()
                .map(|p| i32::from(p.class))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "life_stage".into(),
            people.iter().map(|p| p.acting.as_str()).collect::<Vec<_>>(),
        ),
        Column::new("topics".into(), topics),
    ])?)
}

/// What `generate` wrote.
#[derive(Debug, Default)]
pub struct WorldSummary {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
}

/// Rows buffered before a row group is written.
const ROW_GROUP_ROWS: usize = 500_000;

pub fn generate(params: &WorldParams, out: &Path, progress: bool) -> Result<WorldSummary> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let world = build_catalog(params);
    let people = make_people(params);
    write_parquet(&out.join("catalog.parquet"), &mut catalog_frame(&world)?)?;
    write_parquet(
        &out.join("users.parquet"),
        &mut users_frame(params, &people)?,
    )?;
    write_parquet(&out.join("labels.parquet"), &mut labels_frame(&people)?)?;

    let bar = if progress {
        ProgressBar::new(params.days.into())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:12} {wide_bar} {pos}/{len} days, eta {eta}")
            .expect("valid template"),
    );
    bar.set_message("interactions");
    let path = out.join("interactions.parquet");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let schema = interactions_frame(&world, &people, &[], 0)?
        .schema()
        .clone();
    let mut writer = ParquetWriter::new(file).batched(&schema)?;
    let mut pending: Option<DataFrame> = None;
    let mut total = 0;
    for day in 0..params.days {
        let rows = day_rows(params, &world, &people, day);
        total += rows.len();
        let df = interactions_frame(&world, &people, &rows, day)?;
        match pending.as_mut() {
            Some(p) => {
                p.vstack_mut(&df)?;
            }
            None => pending = Some(df),
        }
        if pending
            .as_ref()
            .is_some_and(|p| p.height() >= ROW_GROUP_ROWS)
        {
            let mut p = pending.take().expect("checked");
            p.rechunk_mut();
            writer.write_batch(&p)?;
        }
        bar.inc(1);
    }
    if let Some(mut p) = pending.take() {
        p.rechunk_mut();
        writer.write_batch(&p)?;
    }
    writer.finish()?;
    bar.finish_and_clear();
    Ok(WorldSummary {
        users: people.len(),
        items: world.items.len(),
        interactions: total,
    })
}
