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
    let mut prices: Vec<Option<f64>> = Vec::new();
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
    let known = vec![true; ids.len()];
    let prices = DataFrame::new_infer_height(vec![
        Column::new("target_id".into(), ids),
        Column::new("price".into(), prices),
        Column::new("known".into(), known),
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

/// `|x|` (polars' own needs a cargo feature for one expression); null stays
/// null.
fn abs(x: Expr) -> Expr {
    when(x.clone().lt(lit(0.0)))
        .then(lit(0.0) - x.clone())
        .otherwise(x)
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
    // Purchase lines are sorted into sales, returns and voids as the
    // definition says (`features::incremental::PurchaseLine` for the fold).
    let quantity = col(cols::QUANTITY).fill_null(lit(1.0));
    let is_return = is_purchase.clone().and(
        quantity
            .clone()
            .lt(lit(0.0))
            .or(col(cols::AMOUNT).lt(lit(0.0)).fill_null(lit(false))),
    );
    let is_sale = is_purchase
        .clone()
        .and(is_return.clone().not())
        .and(quantity.clone().neq(lit(0.0)));
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
            col("known").fill_null(lit(false)).alias("known"),
            col("price").log(lit(std::f64::consts::E)).alias("lp"),
            is_sale.alias("is_sale"),
            is_return.alias("is_return"),
            engagement.alias("e"),
            // Integer division truncates, which is flooring here: validation
            // keeps timestamps at or after 1970.
            ((col(cols::TS) / lit(MICROS_PER_HOUR)) % lit(24i64) / lit(6i64)).alias("daypart"),
            ((col(cols::TS) / lit(MICROS_PER_DAY) + lit(3i64)) % lit(7i64)).alias("weekday"),
        ])
        .with_columns([
            when(col("is_sale"))
                .then(quantity.clone())
                .otherwise(lit(NULL))
                .alias("qty"),
            when(col("is_sale"))
                .then(coalesce(&[
                    col(cols::AMOUNT),
                    col("price") * quantity.clone(),
                ]))
                .otherwise(lit(NULL))
                .alias("spend"),
            when(col("is_return"))
                .then(coalesce(&[
                    abs(col(cols::AMOUNT)),
                    col("price") * abs(quantity),
                ]))
                .otherwise(lit(NULL))
                .alias("refund"),
        ])
        // Conditional terms as columns of their own: a plain sum per group is
        // far cheaper for polars than a filter inside the aggregation.
        .with_columns([
            col("spend").log1p().alias("log_spend"),
            when(col("is_sale"))
                .then(col(cols::TS))
                .otherwise(lit(NULL))
                .alias("ts_sale"),
            when(col("is_sale"))
                .then(col("lp"))
                .otherwise(lit(NULL))
                .alias("lp_sale"),
            when(is_purchase.clone())
                .then(lit(NULL))
                .otherwise(col("lp"))
                .alias("lp_browse"),
            when(col("spend").is_not_null())
                .then(col("w"))
                .otherwise(lit(NULL))
                .alias("w_spend"),
            when(col("known"))
                .then(col("w") * col("e"))
                .otherwise(lit(NULL))
                .alias("we_known"),
        ])
        .cache();

    let has_spend = || col("spend").is_not_null();
    let mut aggs = vec![
        len().cast(DataType::Float64).alias("n"),
        col(cols::TS).min().alias("t_first"),
        col(cols::TS).max().alias("t_last"),
        col("ts_sale").max().alias("t_last_purchase"),
        count_if(col("known")).alias("n_known"),
        count_if(col("lp").is_not_null()).alias("n_priced"),
        count_if(col("is_return")).alias("n_return"),
        col("spend").sum().alias("spend_sum"),
        col("refund").sum().alias("refund_sum"),
        count_if(has_spend()).alias("n_spend"),
        col("log_spend").sum().alias("log_spend_sum"),
        (col("spend") * col("w")).sum().alias("decayed_spend"),
        (col("log_spend") * col("w"))
            .sum()
            .alias("decayed_log_spend"),
        col("w_spend").sum().alias("decayed_spend_count"),
        col("qty").sum().alias("qty_sum"),
        col("lp").sum().alias("lp_sum"),
        col("lp_sale").sum().alias("lp_purchased_sum"),
        count_if(col("lp_sale").is_not_null()).alias("n_lp_purchased"),
        col("lp_browse").sum().alias("lp_browsed_sum"),
        count_if(col("lp_browse").is_not_null()).alias("n_lp_browsed"),
        (col("lp") * col("lp")).sum().alias("lp_sq_sum"),
        col("lp").max().alias("lp_max"),
        col("w").sum().alias("decayed_count"),
        col("we_known").sum().alias("decayed_engagement"),
        count_if(col("weekday").gt_eq(lit(5i64))).alias("n_weekend"),
    ];
    for kind in InteractionType::ALL {
        let counted = if kind == InteractionType::Purchase {
            col("is_sale")
        } else {
            kind_is(kind)
        };
        aggs.push(count_if(counted).alias(format!("n_kind{}", kind.index())));
    }
    for part in 0..4i64 {
        aggs.push(count_if(col("daypart").eq(lit(part))).alias(format!("n_daypart{part}")));
    }
    let per_user = rows.clone().group_by([col(cols::USER)]).agg(aggs).cache();

    let n = || col("n");
    let day = MICROS_PER_DAY as f64;
    let to_now = (micros_until(as_of_micros, col("t_last")) * lit(-rate)).exp();
    let mean_lp = ratio(col("lp_sum"), col("n_priced"));
    let variance = ratio(col("lp_sq_sum"), col("n_priced")) - mean_lp.clone() * mean_lp.clone();
    let weeks =
        (col("t_last") - col("t_first")).cast(DataType::Float64) / lit(MICROS_PER_WEEK as f64);
    let weeks = when(weeks.clone().gt(lit(1.0)))
        .then(weeks)
        .otherwise(lit(1.0));
    let net_spend = when(col("spend_sum").gt(col("refund_sum")))
        .then(col("spend_sum") - col("refund_sum"))
        .otherwise(lit(0.0));
    let has_purchased = col("t_last_purchase").is_not_null();
    let n_purchase = col(format!("n_kind{}", InteractionType::Purchase.index()));
    let mut features = vec![n().log1p(), (col("decayed_count") * to_now.clone()).log1p()];
    for kind in InteractionType::ALL {
        features.push(ratio(col(format!("n_kind{}", kind.index())), n()));
    }
    features.extend([
        ratio(col("n_return"), n()),
        n_purchase.clone().log1p(),
        net_spend.clone().log1p(),
        (col("decayed_spend") * to_now).log1p(),
        ratio(col("spend_sum"), col("n_spend")).log1p(),
        ratio(col("log_spend_sum"), col("n_spend")),
        ratio(col("decayed_log_spend"), col("decayed_spend_count")),
        ratio(col("refund_sum"), col("spend_sum") + col("refund_sum")),
        ratio(net_spend.clone(), n()).log1p(),
        (net_spend / weeks.clone()).log1p(),
        (n_purchase.clone() / weeks.clone()).log1p(),
        ratio(col("qty_sum"), n_purchase),
        mean_lp,
        ratio(col("lp_purchased_sum"), col("n_lp_purchased")),
        ratio(col("lp_browsed_sum"), col("n_lp_browsed")),
        col("lp_max").fill_null(lit(0.0)),
        when(
            col("n_priced")
                .gt(lit(0.0))
                .and(variance.clone().gt(lit(0.0))),
        )
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
        (n() / weeks).log1p(),
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
        .filter(col("known"))
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
