#!/usr/bin/env python3
"""The scikit-learn peer that Micro's profile models are measured against.

Why this exists: a model that beats a majority-class baseline is not
necessarily a good model. This script answers "what would a competent data
scientist get from the same files with off-the-shelf tools in an afternoon?"
It reads the same batch files as ``micro-train`` (SPEC §2.1, §2.4, §2.5;
Parquet, CSV or NDJSON by extension), holds out exactly the same test users
(Micro's seeded SHA-256 split), fits standard scikit-learn models on

  (a) simple per-user aggregates computed here with polars, and
  (b) Micro's own feature table (``micro-train features``), when given,

and reports accuracy / macro-F1 (spending class, life stage) and precision@3
(topics) beside the baselines Micro uses, on the full histories and on each
user's first 20 interactions (cold start).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

# One BLAS thread (set before numpy loads; inherited by joblib workers): the
# products here are small, and two OpenBLAS threads spinning on a busy 2-core
# machine made one logistic-regression fit 12x slower (measured).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import polars as pl
import sklearn
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MultiLabelBinarizer, StandardScaler

TYPES = ["PURCHACE", "SAVE", "INQUERY", "VIEW", "SHARE"]
TYPE_ALIASES = {"PURCHASE": "PURCHACE", "INQUIRY": "INQUERY"}
REQUIRED = ["type", "timestamp", "actor_id", "target_id"]
TEST_FROM_BUCKET = 85  # buckets 85..99 are Micro's test users
COLD_START = 20
TOP_K = 3
MICROS_PER_DAY = 86_400 * 1_000_000
CLASS_TARGETS = ["spending_class", "life_stage"]
MODELS = ["logreg", "forest", "hgb"]
FOREST_TREES = 100
FOREST_SAMPLES = 20_000


# --------------------------------------------------------------------------- inputs


def fail(message: str) -> None:
    print(f"peer.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    fail(f"{path}: unknown extension (want .parquet, .csv or .ndjson)")
    raise AssertionError


def parse_rfc3339(col: pl.Expr) -> pl.Expr:
    """RFC 3339 text → µs since the epoch (null when unparseable)."""
    text = (
        col.str.strip_chars()
        .str.to_uppercase()
        .str.replace(r"Z$", "+00:00")
        .str.replace(" ", "T", literal=True)
    )
    parsed = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC")
    return parsed.dt.epoch("us")


def timestamp_expr(dtype: pl.DataType, path: Path) -> pl.Expr:
    col = pl.col("timestamp")
    if dtype == pl.String:
        return parse_rfc3339(col)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC")
        return col.dt.epoch("us")
    fail(f"{path}: column timestamp has type {dtype} (want RFC 3339 text or a timestamp)")
    raise AssertionError


def ndjson_schema() -> pl.Schema:
    ref = pl.Struct({"id": pl.String, "type": pl.String})
    columns: dict[str, Any] = {
        "id": pl.String, "type": pl.String, "timestamp": pl.String,
        "origin": ref, "actor": ref, "target": ref,
        "value": pl.Struct({"amount": pl.Float64, "currency": pl.String}),
        "quantity": pl.Float64,
    }
    return pl.Schema(columns)


def scan_columnar(path: Path) -> pl.LazyFrame:
    """The columnar form (§2.1) as a lazy frame, NDJSON flattened into it."""
    k = kind(path)
    if k == "parquet":
        return pl.scan_parquet(path)
    if k == "csv":
        return pl.scan_csv(path, infer_schema=False)
    nested = pl.scan_ndjson(path, schema=ndjson_schema())
    return nested.select(
        "id", "type", "timestamp",
        pl.col("actor").struct.field("id").alias("actor_id"),
        pl.col("target").struct.field("id").alias("target_id"),
        pl.col("value").struct.field("amount").alias("value"),
        "quantity",
    )


def as_float(name: str, schema: pl.Schema) -> pl.Expr:
    if name not in schema:
        return pl.lit(None, pl.Float64).alias(name)
    return pl.col(name).cast(pl.Float64, strict=False).alias(name)


def as_text(name: str, schema: pl.Schema) -> pl.Expr:
    if name not in schema:
        return pl.lit(None, pl.String).alias(name)
    return pl.col(name).cast(pl.String).str.strip_chars().replace("", None).alias(name)


def load_interactions(path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """Normalised rows: id, type (Enum), ts (µs), actor, target, value, quantity.

    Unusable rows (no actor id, unknown type, unparseable timestamp) are
    dropped and counted by reason."""
    lf = scan_columnar(path)
    schema = lf.collect_schema()
    missing = [c for c in REQUIRED if c not in schema]
    if missing:
        fail(f"{path}: missing required column(s) {', '.join(missing)}")
    type_text = as_text("type", schema)
    raw = lf.select(
        as_text("id", schema),
        type_text.replace(TYPE_ALIASES).alias("type_text"),
        timestamp_expr(schema["timestamp"], path).alias("ts"),
        as_text("actor_id", schema).alias("actor"),
        as_text("target_id", schema).alias("target"),
        as_float("value", schema),
        as_float("quantity", schema),
    ).collect()
    bad_actor = raw["actor"].is_null()
    bad_type = ~raw["type_text"].is_in(TYPES)
    bad_ts = raw["ts"].is_null()
    counts = {
        "rows": raw.height,
        "dropped_missing_actor_id": int(bad_actor.sum()),
        "dropped_missing_or_unknown_type": int(bad_type.sum()),
        "dropped_unparseable_timestamp": int(bad_ts.sum()),
    }
    usable = raw.filter(~(bad_actor | bad_type | bad_ts)).with_columns(
        pl.col("type_text").cast(pl.Enum(TYPES)).alias("type")
    ).drop("type_text")
    counts["usable"] = usable.height
    return usable, counts


def load_catalog(path: Path) -> pl.DataFrame:
    """target, category, price: one row per target id (the first one wins)."""
    k = kind(path)
    if k == "parquet":
        lf = pl.scan_parquet(path)
    elif k == "csv":
        lf = pl.scan_csv(path, infer_schema=False)
    else:
        lf = pl.scan_ndjson(path)
    schema = lf.collect_schema()
    missing = [c for c in ("target_id", "category") if c not in schema]
    if missing:
        fail(f"{path}: missing required column(s) {', '.join(missing)}")
    return (
        lf.select(
            as_text("target_id", schema).alias("target"),
            as_text("category", schema).alias("category"),
            as_float("price", schema).alias("price"),
        )
        .filter(pl.col("target").is_not_null())
        .unique(subset="target", keep="first", maintain_order=True)
        .collect()
    )


def topics_expr(dtype: pl.DataType) -> pl.Expr:
    col = pl.col("topics")
    if isinstance(dtype, pl.List):
        listed = col.cast(pl.List(pl.String))
    else:
        listed = col.cast(pl.String).str.split(";")
    return listed.list.eval(pl.element().str.strip_chars().filter(pl.element() != "")).alias("topics")


def load_labels(path: Path) -> pl.DataFrame:
    """user_id plus whichever of spending_class / life_stage / topics exist."""
    k = kind(path)
    if k == "parquet":
        df = pl.read_parquet(path)
    elif k == "csv":
        df = pl.read_csv(path, infer_schema=False)
    else:
        df = pl.read_ndjson(path)
    if "user_id" not in df.columns:
        fail(f"{path}: missing required column user_id")
    cols: list[pl.Expr] = [pl.col("user_id").cast(pl.String).str.strip_chars()]
    if "spending_class" in df.columns:
        sc = pl.col("spending_class").cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
        cols.append(pl.when(sc.is_between(1, 5)).then(sc).alias("spending_class"))
    if "life_stage" in df.columns:
        cols.append(pl.col("life_stage").cast(pl.String).str.strip_chars().replace("", None))
    if "topics" in df.columns:
        cols.append(topics_expr(df.schema["topics"]))
    present = [c for c in ("spending_class", "life_stage", "topics") if c in df.columns]
    if not present:
        fail(f"{path}: no label column (spending_class, life_stage or topics)")
    return (
        df.select(cols)
        .filter(pl.col("user_id").is_not_null() & (pl.col("user_id") != ""))
        .unique(subset="user_id", keep="first", maintain_order=True)
    )


def load_feature_table(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Micro's feature table: user_id + one numeric column per feature."""
    df = pl.read_parquet(path)
    if "user_id" not in df.columns:
        fail(f"{path}: missing column user_id")
    names = [c for c in df.columns if c != "user_id"] if columns is None else columns
    absent = [c for c in names if c not in df.columns]
    if absent:
        fail(f"{path}: missing feature column(s) {', '.join(absent[:5])}")
    return df.select(
        pl.col("user_id").cast(pl.String),
        *[pl.col(c).cast(pl.Float32) for c in names],
    )


# --------------------------------------------------------------------------- split


def bucket(seed: int, user_id: str) -> int:
    """Micro's bucket (training/src/train.rs split_of): SHA-256 of the seed's
    8 little-endian bytes followed by the user id, first 8 bytes LE, mod 100."""
    digest = hashlib.sha256(seed.to_bytes(8, "little") + user_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % 100


def test_mask(seed: int, users: list[str]) -> np.ndarray:
    return np.fromiter((bucket(seed, u) >= TEST_FROM_BUCKET for u in users), bool, len(users))


# --------------------------------------------------------------------------- histories


def prepare_history(interactions: pl.DataFrame, catalog: pl.DataFrame, users: pl.Series) -> pl.DataFrame:
    """The labelled users' histories, deduplicated by id (the earliest
    occurrence kept), ordered by timestamp then id, with catalog category and
    price, and the spend of each purchase row."""
    rows = interactions.filter(pl.col("actor").is_in(users.implode())).with_row_index("row")
    # Sorting 10M rows by a text id is slow, and the id only matters between
    # rows of one user at the same instant: rank those few by (id, row) and
    # sort everything by (ts, that rank), stably.
    ties = (
        rows.filter(pl.len().over("actor", "ts") > 1)
        .select("row", "ts", "id")
        .sort(["ts", "id", "row"], nulls_last=True)
        .select("row", pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias("tie"))
    )
    rows = (
        rows.join(ties, on="row", how="left", maintain_order="left")
        .with_columns(pl.col("tie").fill_null(0))
        .sort(["ts", "tie"], maintain_order=True)
    )
    rows = rows.filter(pl.col("id").is_null() | pl.col("id").is_first_distinct()).drop("row", "tie")
    rows = rows.join(catalog, on="target", how="left", maintain_order="left")
    spend = pl.coalesce(pl.col("value"), pl.col("price") * pl.col("quantity").fill_null(1.0))
    return rows.with_columns(
        pl.when(pl.col("type") == "PURCHACE").then(spend).alias("spend"),
    )


def first_k(history: pl.DataFrame, k: int) -> pl.DataFrame:
    """Each user's first k interactions (history is already time-ordered)."""
    return history.filter(pl.int_range(pl.len()).over("actor") < k)


def simple_features(history: pl.DataFrame, categories: list[str], reference_us: int | None) -> pl.DataFrame:
    """Feature set (a). Recency is measured to `reference_us`, or, when None,
    to each user's own last interaction (cold start: "right after the k-th")."""
    n = pl.len().cast(pl.Float64)
    aggs: list[pl.Expr] = [n.alias("interactions")]
    aggs += [(pl.col("type") == t).sum().cast(pl.Float64).alias(f"count_{t}") for t in TYPES]
    aggs += [
        pl.col("spend").sum().alias("total_spend"),
        pl.col("spend").mean().alias("mean_spend_per_purchase"),
        pl.col("spend").max().alias("max_spend"),
        pl.col("price").mean().alias("mean_price"),
        pl.col("price").max().alias("max_price"),
        pl.col("target").n_unique().cast(pl.Float64).alias("distinct_targets"),
        pl.col("ts").min().alias("first_ts"),
        pl.col("ts").max().alias("last_ts"),
    ]
    aggs += [(pl.col("category") == c).sum().cast(pl.Float64).alias(f"cat_{i}") for i, c in enumerate(categories)]
    per_user = history.group_by("actor").agg(aggs)
    reference = pl.col("last_ts") if reference_us is None else pl.lit(reference_us)
    derived = [
        (pl.col(f"count_{t}") / pl.col("interactions")).alias(f"share_{t}") for t in TYPES
    ] + [
        (pl.col(f"cat_{i}") / pl.col("interactions")).alias(f"category_share_{i}") for i in range(len(categories))
    ] + [
        ((pl.col("last_ts") - pl.col("first_ts")) / MICROS_PER_DAY).alias("tenure_days"),
        ((reference - pl.col("last_ts")) / MICROS_PER_DAY).alias("recency_days"),
    ]
    out = per_user.with_columns(derived).drop(["first_ts", "last_ts"] + [f"cat_{i}" for i in range(len(categories))])
    feature_cols = [c for c in out.columns if c != "actor"]
    return out.select(
        pl.col("actor").alias("user_id"),
        *[pl.col(c).cast(pl.Float32).fill_null(0.0).fill_nan(0.0) for c in feature_cols],
    )


def baseline_topics(history: pl.DataFrame) -> dict[str, list[str]]:
    """Top-3 past categories per user by purchase spend, ties (and users
    without spend) broken by interaction count, then category name."""
    ranked = (
        history.filter(pl.col("category").is_not_null())
        .group_by("actor", "category")
        .agg(pl.col("spend").sum().alias("s"), pl.len().alias("n"))
        .sort(["actor", "s", "n", "category"], descending=[False, True, True, False])
        .group_by("actor", maintain_order=True)
        .agg(pl.col("category").head(TOP_K))
    )
    return dict(zip(ranked["actor"].to_list(), ranked["category"].to_list()))


def matrix(users: pl.DataFrame, table: pl.DataFrame) -> np.ndarray:
    """Rows in the order of `users`; users without a row get zeros."""
    joined = users.select("user_id").join(table, on="user_id", how="left", maintain_order="left")
    return joined.drop("user_id").fill_null(0.0).to_numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------- models


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def classifiers(seed: int, n_fit: int, names: list[str]) -> dict[str, Callable[[], BaseEstimator]]:
    """Fixed, sensible settings; nothing is tuned on test users. Counts and
    money are heavy-tailed, so the linear model sees them on a signed log
    scale. The forest draws at most FOREST_SAMPLES users per tree so that
    100k users fit in minutes on 2 cores (more trees or rows barely move an
    argmax over 5 classes)."""
    every: dict[str, Callable[[], BaseEstimator]] = {
        "logreg": lambda: make_pipeline(
            FunctionTransformer(signed_log1p), StandardScaler(), LogisticRegression(max_iter=1000)
        ),
        "forest": lambda: RandomForestClassifier(
            n_estimators=FOREST_TREES, min_samples_leaf=2,
            max_samples=min(1.0, FOREST_SAMPLES / max(n_fit, 1)), n_jobs=2, random_state=seed,
        ),
        "hgb": lambda: HistGradientBoostingClassifier(random_state=seed),
    }
    return {name: every[name] for name in names}


def topic_ranker() -> BaseEstimator:
    return make_pipeline(
        FunctionTransformer(signed_log1p),
        StandardScaler(),
        OneVsRestClassifier(LogisticRegression(max_iter=1000), n_jobs=2),
    )


def settings(model: BaseEstimator) -> str:
    """The estimator's repr on one line, without memory addresses."""
    return re.sub(r"\s+", " ", re.sub(r" at 0x[0-9a-f]+", "", repr(model)))


def class_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    present = np.unique(truth)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)),
    }


def precision_at_k(predicted: list[list[str]], relevant: list[list[str]]) -> float:
    if not predicted:
        return 0.0
    hits = [len(set(p[:TOP_K]) & set(r)) / TOP_K for p, r in zip(predicted, relevant)]
    return float(np.mean(hits))


# --------------------------------------------------------------------------- the run


@dataclass
class FeatureSet:
    name: str
    full: np.ndarray  # one row per labelled user, in label order
    first20: np.ndarray | None  # same users, first 20 interactions only
    columns: list[str]


@dataclass
class Report:
    rows: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, target: str, features: str, model: str, evaluation: str, users: int,
            metric: str, value: float, fit_seconds: float | None = None) -> None:
        self.rows.append({
            "target": target, "features": features, "model": model, "eval": evaluation,
            "users": users, "metric": metric, "value": round(value, 6),
            "fit_seconds": None if fit_seconds is None else round(fit_seconds, 3),
        })

    def print_table(self) -> None:
        head = f"{'target':<15} {'features':<8} {'model':<16} {'eval':<8} {'users':>7} {'metric':<15} {'value':>7} {'fit s':>7}"
        print(head)
        print("-" * len(head))
        for r in self.rows:
            fit = "" if r["fit_seconds"] is None else f"{r['fit_seconds']:.1f}"
            print(f"{r['target']:<15} {r['features']:<8} {r['model']:<16} {r['eval']:<8} "
                  f"{r['users']:>7} {r['metric']:<15} {r['value']:>7.4f} {fit:>7}")


class Timer:
    def __init__(self, report: Report, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> Self:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.report.timings[self.name] = round(self.seconds, 3)


def evaluate_classes(report: Report, target: str, labels: pl.DataFrame, test: np.ndarray,
                     sets: list[FeatureSet], seed: int, models: list[str]) -> None:
    values = labels[target]
    has = values.is_not_null().to_numpy()
    fit_rows, test_rows = has & ~test, has & test
    if fit_rows.sum() == 0 or test_rows.sum() == 0:
        print(f"{target}: skipped ({int(fit_rows.sum())} fitted and {int(test_rows.sum())} test users labelled)")
        return
    y = values.cast(pl.String).to_numpy()
    y_fit, y_test = y[fit_rows], y[test_rows]
    classes, counts = np.unique(y_fit, return_counts=True)
    majority = classes[np.argmax(counts)]
    base = class_metrics(y_test, np.full(len(y_test), majority))
    for metric, value in base.items():
        report.add(target, "-", f"majority({majority})", "test", len(y_test), metric, value)
    for fs in sets:
        for name, build in classifiers(seed, int(fit_rows.sum()), models).items():
            model = build()
            with Timer(report, f"fit {target} {fs.name} {name}") as t, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(fs.full[fit_rows], y_fit)
            for metric, value in class_metrics(y_test, model.predict(fs.full[test_rows])).items():
                report.add(target, fs.name, name, "test", len(y_test), metric, value, t.seconds)
            if fs.first20 is not None:
                cold = class_metrics(y_test, model.predict(fs.first20[test_rows]))
                for metric, value in cold.items():
                    report.add(target, fs.name, name, f"first{COLD_START}", len(y_test), metric, value)


def evaluate_topics(report: Report, labels: pl.DataFrame, test: np.ndarray, sets: list[FeatureSet],
                    baseline_full: dict[str, list[str]], baseline_cold: dict[str, list[str]] | None) -> None:
    topics = labels["topics"].to_list()
    has = np.array([bool(t) for t in topics])
    fit_rows, test_rows = np.flatnonzero(has & ~test), np.flatnonzero(has & test)
    if len(fit_rows) == 0 or len(test_rows) == 0:
        print(f"topics: skipped ({len(fit_rows)} fitted and {len(test_rows)} test users labelled)")
        return
    users = labels["user_id"].to_list()
    relevant = [topics[i] for i in test_rows]
    binarizer = MultiLabelBinarizer()
    y_fit = binarizer.fit_transform([topics[i] for i in fit_rows])
    vocabulary = np.array(binarizer.classes_)
    for evaluation, base in (("test", baseline_full), (f"first{COLD_START}", baseline_cold)):
        if base is not None:
            predicted = [base.get(users[i], []) for i in test_rows]
            report.add("topics", "-", "spend-ranked-past", evaluation, len(test_rows), "precision_at_3",
                       precision_at_k(predicted, relevant))
    for fs in sets:
        model = topic_ranker()
        with Timer(report, f"fit topics {fs.name} ovr-logreg") as t, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(fs.full[fit_rows], y_fit)
        for evaluation, x in (("test", fs.full), (f"first{COLD_START}", fs.first20)):
            if x is None:
                continue
            scores = model.predict_proba(x[test_rows])
            top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
            predicted = [list(vocabulary[row]) for row in top]
            report.add("topics", fs.name, "ovr-logreg", evaluation, len(test_rows), "precision_at_3",
                       precision_at_k(predicted, relevant), t.seconds if evaluation == "test" else None)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--features", type=Path, help="Micro's feature table (micro-train features)")
    p.add_argument("--features-first20", type=Path,
                   help="the same table on each user's first 20 interactions, as of the 20th "
                        "(micro-train features --first-n 20)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--models", default="logreg,forest",
                   type=lambda v: [m for m in v.split(",") if m],
                   help=f"classifiers to fit, comma-separated, of {','.join(MODELS)} (default logreg,forest)")
    p.add_argument("--json", type=Path, help="write all metrics here")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    report = Report()
    started = time.perf_counter()

    with Timer(report, "read inputs") as t:
        interactions, counts = load_interactions(args.interactions)
        catalog = load_catalog(args.catalog)
        labels = load_labels(args.labels)
    print(f"read {counts['rows']} interaction rows ({counts['usable']} usable), "
          f"{catalog.height} catalog targets, {labels.height} labelled users in {t.seconds:.1f}s")
    dropped = {k: v for k, v in counts.items() if k.startswith("dropped") and v}
    if dropped:
        print(f"  dropped: {dropped}")

    with Timer(report, "simple features") as t:
        categories = sorted(c for c in catalog["category"].unique().to_list() if c is not None)
        history = prepare_history(interactions, catalog, labels["user_id"])
        del interactions
        reference = int(history["ts"].max() or 0)  # type: ignore[arg-type]
        simple_full = simple_features(history, categories, reference)
        longest = int(history.group_by("actor").len()["len"].max() or 0)  # type: ignore[arg-type]
        cold = first_k(history, COLD_START) if longest > COLD_START else None
        simple_cold = simple_features(cold, categories, None) if cold is not None else None
        base_full = baseline_topics(history) if "topics" in labels.columns else {}
        base_cold = baseline_topics(cold) if cold is not None and "topics" in labels.columns else None
    n_dupes = counts["usable"] - history.height  # also rows of unlabelled users
    print(f"simple features: {simple_full.width - 1} columns for {simple_full.height} users "
          f"({len(categories)} categories) in {t.seconds:.1f}s")
    if cold is None:
        print(f"cold start: skipped (no labelled user has more than {COLD_START} interactions)")

    sets = [FeatureSet(
        "simple", matrix(labels, simple_full),
        matrix(labels, simple_cold) if simple_cold is not None else None,
        [c for c in simple_full.columns if c != "user_id"],
    )]
    if args.features is not None:
        micro = load_feature_table(args.features)
        columns = [c for c in micro.columns if c != "user_id"]
        micro_cold = load_feature_table(args.features_first20, columns) if args.features_first20 else None
        sets.append(FeatureSet("micro", matrix(labels, micro),
                               matrix(labels, micro_cold) if micro_cold is not None else None, columns))
        print(f"micro features: {len(columns)} columns for {micro.height} users")

    users = labels["user_id"].to_list()
    test = test_mask(args.seed, users)
    print(f"split (seed {args.seed}): {int((~test).sum())} users to fit on, {int(test.sum())} test users\n")

    for target in CLASS_TARGETS:
        if target in labels.columns:
            evaluate_classes(report, target, labels, test, sets, args.seed, args.models)
    if "topics" in labels.columns:
        evaluate_topics(report, labels, test, sets, base_full, base_cold)

    report.timings["total"] = round(time.perf_counter() - started, 3)
    report.print_table()
    print(f"\ntotal {report.timings['total']:.1f}s")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "inputs": {k: str(v) for k, v in vars(args).items() if v is not None},
            "data": {**counts, "rows_of_labelled_users_after_dedup": history.height,
                     "not_used_duplicates_or_unlabelled": n_dupes,
                     "labelled_users": labels.height, "fit_users": int((~test).sum()),
                     "test_users": int(test.sum()), "categories": len(categories),
                     "cold_start": cold is not None},
            "feature_sets": {fs.name: fs.columns for fs in sets},
            "split": {"rule": "sha256(seed u64 LE + user_id)[:8] LE % 100; test = bucket >= 85",
                      "seed": args.seed},
            "model_settings": {
                **{name: settings(build()) for name, build in
                   classifiers(args.seed, int((~test).sum()), args.models).items()},
                "ovr-logreg": settings(topic_ranker()),
            },
            "results": report.rows,
            "timings_seconds": report.timings,
            "versions": {"python": platform.python_version(), "polars": pl.__version__,
                         "numpy": np.__version__, "scikit-learn": sklearn.__version__},
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
