//! The batch evaluator: polars, lazily, over a whole interaction log joined
//! with the catalog, one row per user. It implements the table in
//! [`features::definition`] independently of the incremental fold; the parity
//! property test (`tests/batch/parity.rs`) holds the two together.
//!
//! It is a crate of its own, not a cargo feature of `features`, so that no
//! build of the serving binaries links polars: cargo unifies a crate's
//! features across a workspace build, but not its dependents.

pub mod io;

/// The polars this evaluator was built with, for callers that handle its frames.
pub use polars;

use std::collections::HashMap;

use polars::prelude::*;

use features::definition::{
    CatalogIndex, FeatureSpec, BASE_FEATURES, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_WEEK,
    TAG_FAMILIES,
};
use features::interaction::InteractionType;
use io::cols;

/// Errors of the batch evaluator and its file readers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read as asked: names the file and what is wrong.
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Name of the user column in feature tables.
pub const USER_ID: &str = "user_id";

fn catalog_frames(catalog: &CatalogIndex) -> Result<(DataFrame, DataFrame)> {
    let mut ids = Vec::new();
    let mut prices = Vec::new();
    let mut tag_targets = Vec::new();
    let mut tags = Vec::new();
    let mut is_category = Vec::new();
    for (id, info) in catalog.iter() {
        ids.push(id);
        prices.push(info.price);
        for &t in info.tags.iter() {
            tag_targets.push(id);
            tags.push(i64::from(t));
            is_category.push(if info.category == Some(t) { 1.0 } else { 0.0 });
        }
    }
    let prices = DataFrame::new_infer_height(vec![
        Column::new("target_id".into(), ids),
        Column::new("price".into(), prices),
    ])?;
    let tags = DataFrame::new_infer_height(vec![
        Column::new("target_id".into(), tag_targets),
        Column::new("tag".into(), tags),
        Column::new("is_category".into(), is_category),
    ])?;
    Ok((prices, tags))
}

fn kind_is(kind: InteractionType) -> Expr {
    col(cols::KIND).eq(lit(kind.index() as i32))
}

/// Sum of a boolean condition, as a float count.
fn count_if(condition: Expr) -> Expr {
    condition.cast(DataType::Float64).sum()
}

/// `num / den`, or 0 when `den` is not positive.
fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0.0)))
        .then(num / den)
        .otherwise(lit(0.0))
}

/// Microseconds from `ts` to `as_of`, clamped at zero, as float.
fn micros_until(as_of: i64, ts: Expr) -> Expr {
    let d = lit(as_of) - ts;
    when(d.clone().gt(lit(0i64)))
        .then(d)
        .otherwise(lit(0i64))
        .cast(DataType::Float64)
}

/// Computes every user's feature vector as of `as_of_micros` from a
/// normalised interaction frame (see [`io::read_interactions`]). Returns
/// `user_id` plus one Float64 column per schema name, sorted by user.
pub fn compute_features(
    spec: &FeatureSpec,
    catalog: &CatalogIndex,
    interactions: &DataFrame,
    as_of_micros: i64,
) -> Result<DataFrame> {
    let rate = spec.params.decay_per_micro();
    let (prices, target_tags) = catalog_frames(catalog)?;
    let is_purchase = kind_is(InteractionType::Purchase);
    let mut engagement = when(kind_is(InteractionType::ALL[0]))
        .then(lit(spec.params.type_weights[0]))
        .otherwise(lit(0.0));
    for kind in &InteractionType::ALL[1..] {
        engagement = when(kind_is(*kind))
            .then(lit(spec.params.type_weight(*kind)))
            .otherwise(engagement);
    }

    // One row per distinct interaction up to `as_of`, with per-row terms.
    let rows = interactions
        .clone()
        .lazy()
        .filter(col(cols::TS).lt_eq(lit(as_of_micros)))
        .unique_stable_generic(Some(vec![col(cols::ID)]), UniqueKeepStrategy::First)
        .left_join(prices.lazy(), col(cols::TARGET), col("target_id"))
        .with_column(col(cols::TS).max().over([col(cols::USER)])?.alias("t_last"))
        .with_columns([
            ((col("t_last") - col(cols::TS)).cast(DataType::Float64) * lit(-rate))
                .exp()
                .alias("w"),
            col("price").log(lit(std::f64::consts::E)).alias("lp"),
            when(is_purchase.clone())
                .then(col(cols::QUANTITY).fill_null(lit(1.0)))
                .otherwise(lit(NULL))
                .alias("qty"),
            engagement.alias("e"),
            // Integer division truncates, which is flooring here: validation
            // keeps timestamps at or after 1970.
            ((col(cols::TS) / lit(MICROS_PER_HOUR)) % lit(24i64) / lit(6i64)).alias("daypart"),
            ((col(cols::TS) / lit(MICROS_PER_DAY) + lit(3i64)) % lit(7i64)).alias("weekday"),
        ])
        .with_column(
            when(is_purchase.clone())
                .then(coalesce(&[col(cols::AMOUNT), col("price") * col("qty")]))
                .otherwise(lit(NULL))
                .alias("spend"),
        )
        .cache();

    let mut aggs = vec![
        len().cast(DataType::Float64).alias("n"),
        col(cols::TS).min().alias("t_first"),
        col(cols::TS).max().alias("t_last"),
        col(cols::TS)
            .filter(is_purchase.clone())
            .max()
            .alias("t_last_purchase"),
        count_if(col("lp").is_not_null()).alias("n_known"),
        col("spend").sum().alias("spend_sum"),
        count_if(col("spend").is_not_null()).alias("n_spend"),
        (col("spend") * col("w")).sum().alias("decayed_spend"),
        col("qty").sum().alias("qty_sum"),
        col("lp")
            .filter(is_purchase.clone())
            .sum()
            .alias("lp_purchased_sum"),
        count_if(col("lp").is_not_null().and(is_purchase.clone())).alias("n_lp_purchased"),
        col("lp")
            .filter(is_purchase.clone().not())
            .sum()
            .alias("lp_browsed_sum"),
        count_if(col("lp").is_not_null().and(is_purchase.clone().not())).alias("n_lp_browsed"),
        (col("lp") * col("lp")).sum().alias("lp_sq_sum"),
        col("lp").max().alias("lp_max"),
        col("w").sum().alias("decayed_count"),
        (col("w") * col("e"))
            .filter(col("lp").is_not_null())
            .sum()
            .alias("decayed_engagement"),
        count_if(col("weekday").gt_eq(lit(5i64))).alias("n_weekend"),
    ];
    for kind in InteractionType::ALL {
        aggs.push(count_if(kind_is(kind)).alias(format!("n_kind{}", kind.index())));
    }
    for part in 0..4i64 {
        aggs.push(count_if(col("daypart").eq(lit(part))).alias(format!("n_daypart{part}")));
    }
    let per_user = rows.clone().group_by([col(cols::USER)]).agg(aggs).cache();

    let n = || col("n");
    let day = MICROS_PER_DAY as f64;
    let to_now = (micros_until(as_of_micros, col("t_last")) * lit(-rate)).exp();
    let n_priced = col("n_lp_purchased") + col("n_lp_browsed");
    let mean_lp = ratio(
        col("lp_purchased_sum") + col("lp_browsed_sum"),
        n_priced.clone(),
    );
    let variance = ratio(col("lp_sq_sum"), n_priced.clone()) - mean_lp.clone() * mean_lp;
    let weeks =
        (col("t_last") - col("t_first")).cast(DataType::Float64) / lit(MICROS_PER_WEEK as f64);
    let has_purchased = col("t_last_purchase").is_not_null();
    let mut features = vec![n().log1p(), (col("decayed_count") * to_now.clone()).log1p()];
    for kind in InteractionType::ALL {
        features.push(ratio(col(format!("n_kind{}", kind.index())), n()));
    }
    let n_purchase = col(format!("n_kind{}", InteractionType::Purchase.index()));
    features.extend([
        n_purchase.clone().log1p(),
        col("spend_sum").log1p(),
        (col("decayed_spend") * to_now).log1p(),
        when(col("n_spend").gt(lit(0.0)))
            .then((col("spend_sum") / col("n_spend")).log1p())
            .otherwise(lit(0.0)),
        ratio(col("qty_sum"), n_purchase),
        ratio(col("lp_purchased_sum"), col("n_lp_purchased")),
        ratio(col("lp_browsed_sum"), col("n_lp_browsed")),
        col("lp_max").fill_null(lit(0.0)),
        when(n_priced.gt(lit(0.0)).and(variance.clone().gt(lit(0.0))))
            .then(variance)
            .otherwise(lit(0.0)),
        ratio(col("n_known"), n()),
        (micros_until(as_of_micros, col("t_first")) / lit(day)).log1p(),
        (micros_until(as_of_micros, col("t_last")) / lit(day)).log1p(),
        when(has_purchased.clone())
            .then(lit(1.0))
            .otherwise(lit(0.0)),
        when(has_purchased)
            .then((micros_until(as_of_micros, col("t_last_purchase")) / lit(day)).log1p())
            .otherwise(lit(0.0)),
        (n() / when(weeks.clone().gt(lit(1.0)))
            .then(weeks)
            .otherwise(lit(1.0)))
        .log1p(),
    ]);
    for part in 0..4 {
        features.push(ratio(col(format!("n_daypart{part}")), n()));
    }
    features.push(ratio(col("n_weekend"), n()));
    debug_assert_eq!(features.len(), BASE_FEATURES.len());

    let mut select = vec![col(cols::USER).alias(USER_ID)];
    select.extend(
        features
            .into_iter()
            .zip(BASE_FEATURES)
            .map(|(e, name)| e.cast(DataType::Float64).alias(name)),
    );
    let base = per_user
        .clone()
        .select(select)
        .sort([USER_ID], SortMultipleOptions::default())
        .collect()?;

    // Interest shares, long form: (user, tag, share).
    let tag_shares = rows
        .filter(col("lp").is_not_null())
        .join(
            target_tags.lazy(),
            [col(cols::TARGET)],
            [col("target_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col(cols::USER), col("tag")])
        .agg([
            (col("w") * col("e")).sum().alias("tag_engagement"),
            len().cast(DataType::Float64).alias("tag_count"),
            col("is_category").sum().alias("category_count"),
        ])
        .join(
            per_user.select([col(cols::USER), col("decayed_engagement"), col("n_known")]),
            [col(cols::USER)],
            [col(cols::USER)],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col(cols::USER),
            col("tag"),
            ratio(col("tag_engagement"), col("decayed_engagement")).alias("share"),
            ratio(col("tag_count"), col("n_known")).alias("lifetime_share"),
            ratio(col("category_count"), col("n_known")).alias("category_share"),
        ])
        .collect()?;

    let users = base.column(USER_ID)?.str()?;
    let row_of: HashMap<&str, usize> = users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| u.map(|u| (u, i)))
        .collect();
    // Decayed shares, then lifetime shares, then category shares, in tag order.
    let n_tags = spec.tags.len();
    let mut tag_columns = vec![vec![0.0f64; base.height()]; TAG_FAMILIES * n_tags];
    let (tu, tt) = (
        tag_shares.column(cols::USER)?.str()?,
        tag_shares.column("tag")?.i64()?,
    );
    let (share, lifetime, category) = (
        tag_shares.column("share")?.f64()?,
        tag_shares.column("lifetime_share")?.f64()?,
        tag_shares.column("category_share")?.f64()?,
    );
    for ((((user, tag), share), lifetime), category) in tu
        .iter()
        .zip(tt.iter())
        .zip(share.iter())
        .zip(lifetime.iter())
        .zip(category.iter())
    {
        let (Some(user), Some(tag)) = (user, tag) else {
            continue;
        };
        let (Some(&row), Ok(tag)) = (row_of.get(user), usize::try_from(tag)) else {
            continue;
        };
        if tag < n_tags {
            tag_columns[tag][row] = share.unwrap_or(0.0);
            tag_columns[n_tags + tag][row] = lifetime.unwrap_or(0.0);
            tag_columns[2 * n_tags + tag][row] = category.unwrap_or(0.0);
        }
    }
    let schema = spec.schema();
    let mut out = base;
    for (values, name) in tag_columns
        .into_iter()
        .zip(&schema.names[BASE_FEATURES.len()..])
    {
        out.with_column(Column::new(name.as_str().into(), values))?;
    }
    Ok(out)
}

/// The rows of a feature table as `user_id → vector`, for tests and tools.
pub fn feature_rows(table: &DataFrame) -> Result<Vec<(String, Vec<f64>)>> {
    let users = table.column(USER_ID)?.str()?;
    let columns = table
        .columns()
        .iter()
        .filter(|c| c.name().as_str() != USER_ID)
        .map(|c| c.f64().cloned())
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok(users
        .iter()
        .enumerate()
        .map(|(row, user)| {
            (
                user.unwrap_or_default().to_owned(),
                columns
                    .iter()
                    .map(|c| c.get(row).unwrap_or(f64::NAN))
                    .collect(),
            )
        })
        .collect())
}
