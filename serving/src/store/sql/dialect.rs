//! The SQL of every role is written once, for both engines: statements are
//! [`Stmt`]s with `?` placeholders and [`Param`] values, and they run through
//! [`Dialect`], which sqlx's generic executor implements for any database
//! that can bind those values and read the role modules' rows.
//!
//! sqlx asks a generic caller to prove a dozen bounds (the connection is an
//! executor, each bound type encodes, each row type decodes); stating them on
//! every role's `impl` block is what made the earlier code one macro stamped
//! out twice. Here they are stated once, on the blanket implementation;
//! role code only says `D: Engine`, and gets the row types it reads through
//! [`Dialect`]'s supertraits.

use std::borrow::Cow;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use super::rows::{BodyRow, ErasureMark, EventRow, LogRow, OutboxRow, TailRow, UserRow};
use crate::store::Result;

/// One bound value. Every column is an integer, a float or text, which both
/// engines map alike.
#[derive(Clone, Debug, PartialEq)]
pub enum Param<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<Cow<'a, str>>),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        Param::Real(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Param<'_> {
    fn from(v: String) -> Self {
        Param::Text(Some(Cow::Owned(v)))
    }
}

/// A statement and its values, in placeholder order. Built with `?`
/// placeholders; for PostgreSQL they are numbered (`$1, $2, …`) as they are
/// written, so fixed text and [`Stmt::bind`] may be mixed freely.
#[derive(Clone, Debug)]
pub struct Stmt<'a> {
    sql: String,
    params: Vec<Param<'a>>,
    numbered: bool,
    placeholders: usize,
}

impl<'a> Stmt<'a> {
    /// A statement starting with `sql`, whose `?` take the values given
    /// next with [`Stmt::arg`].
    pub fn new(numbered: bool, sql: &str) -> Stmt<'a> {
        let mut stmt = Stmt {
            sql: String::with_capacity(sql.len() + 16),
            params: Vec::new(),
            numbered,
            placeholders: 0,
        };
        stmt.push(sql);
        stmt
    }

    /// Appends SQL text (its `?` placeholders included).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        if !self.numbered {
            self.placeholders += sql.matches('?').count();
            self.sql.push_str(sql);
            return self;
        }
        for c in sql.chars() {
            if c == '?' {
                self.placeholder();
            } else {
                self.sql.push(c);
            }
        }
        self
    }

    fn placeholder(&mut self) {
        self.placeholders += 1;
        if self.numbered {
            self.sql.push('$');
            self.sql.push_str(&self.placeholders.to_string());
        } else {
            self.sql.push('?');
        }
    }

    /// The value of the next placeholder already in the text.
    pub fn arg(mut self, value: impl Into<Param<'a>>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Appends a placeholder and its value.
    pub fn bind(&mut self, value: impl Into<Param<'a>>) -> &mut Self {
        self.placeholder();
        self.params.push(value.into());
        self
    }

    /// Appends `(?, ?, …)` for each row, comma-separated: the values of a
    /// multi-row `INSERT`.
    pub fn values<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Vec<Param<'a>>, T),
    ) -> &mut Self {
        let mut values = Vec::new();
        for (n, item) in rows.into_iter().enumerate() {
            self.push(if n == 0 { "(" } else { ", (" });
            values.clear();
            row(&mut values, item);
            for (k, value) in values.drain(..).enumerate() {
                if k > 0 {
                    self.sql.push_str(", ");
                }
                self.bind(value);
            }
            self.sql.push(')');
        }
        self
    }

    /// `(?, ?, …)` of a list, for `IN`.
    pub fn list<T: Into<Param<'a>>>(&mut self, items: impl IntoIterator<Item = T>) -> &mut Self {
        self.sql.push('(');
        for (k, item) in items.into_iter().enumerate() {
            if k > 0 {
                self.sql.push_str(", ");
            }
            self.bind(item);
        }
        self.sql.push(')');
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// sqlx's query with a statement's values bound.
fn bound<'q, DB>(stmt: &'q Stmt<'_>) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    debug_assert_eq!(
        stmt.params.len(),
        stmt.placeholders,
        "one value per placeholder: {}",
        stmt.sql
    );
    let mut query = sqlx::query::<DB>(&stmt.sql);
    for param in &stmt.params {
        query = match param {
            Param::Int(v) => query.bind(*v),
            Param::Real(v) => query.bind(*v),
            Param::Text(v) => query.bind(v.as_deref()),
        };
    }
    query
}

/// Rows of this database read as `T`: [`Dialect`]'s supertraits name the
/// row types the role modules read, so a generic caller may read them.
pub trait RowOf<T>: Database {
    fn read(row: &Self::Row) -> sqlx::Result<T>;
}

impl<DB: Database, T> RowOf<T> for DB
where
    T: for<'r> FromRow<'r, DB::Row>,
{
    fn read(row: &DB::Row) -> sqlx::Result<T> {
        T::from_row(row)
    }
}

/// How many rows a statement changed (both engines say so with a method of
/// the same name that no trait of sqlx's carries).
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// The row types the role modules read. Implemented for the two engines
/// by name; as supertraits of [`Dialect`], they reach every `D: Dialect`.
pub trait RowTypes:
    RowOf<LogRow>
    + RowOf<UserRow>
    + RowOf<EventRow>
    + RowOf<BodyRow>
    + RowOf<OutboxRow>
    + RowOf<TailRow>
    + RowOf<ErasureMark>
    + RowOf<(i64,)>
    + RowOf<(String,)>
    + RowOf<(Option<i64>,)>
{
}

impl RowTypes for sqlx::Sqlite {}
impl RowTypes for sqlx::Postgres {}

/// A database the role modules can run statements on.
#[async_trait]
pub trait Dialect: RowTypes {
    /// Runs a statement; returns the rows it changed.
    async fn execute(pool: &Pool<Self>, stmt: &Stmt<'_>) -> Result<u64>;
    async fn fetch(pool: &Pool<Self>, stmt: &Stmt<'_>) -> Result<Vec<Self::Row>>;
    async fn execute_in(tx: &mut Transaction<'static, Self>, stmt: &Stmt<'_>) -> Result<u64>;
    async fn fetch_in(
        tx: &mut Transaction<'static, Self>,
        stmt: &Stmt<'_>,
    ) -> Result<Vec<Self::Row>>;
}

#[async_trait]
impl<DB> Dialect for DB
where
    DB: RowTypes,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    async fn execute(pool: &Pool<DB>, stmt: &Stmt<'_>) -> Result<u64> {
        Ok(bound(stmt).execute(pool).await?.rows_affected())
    }

    async fn fetch(pool: &Pool<DB>, stmt: &Stmt<'_>) -> Result<Vec<DB::Row>> {
        Ok(bound(stmt).fetch_all(pool).await?)
    }

    async fn execute_in(tx: &mut Transaction<'static, DB>, stmt: &Stmt<'_>) -> Result<u64> {
        Ok(bound(stmt).execute(&mut **tx).await?.rows_affected())
    }

    async fn fetch_in(tx: &mut Transaction<'static, DB>, stmt: &Stmt<'_>) -> Result<Vec<DB::Row>> {
        Ok(bound(stmt).fetch_all(&mut **tx).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{Param, Stmt};

    #[test]
    fn placeholders_are_numbered_for_postgres_in_writing_order() {
        let mut stmt = Stmt::new(true, "SELECT a FROM t WHERE b = ? AND c < ?")
            .arg("x")
            .arg(2);
        stmt.push(" AND d IN ").list(["p", "q"]);
        stmt.push(" AND e = ").bind(Some(1.5));
        assert_eq!(
            stmt.sql(),
            "SELECT a FROM t WHERE b = $1 AND c < $2 AND d IN ($3, $4) AND e = $5"
        );
        assert_eq!(stmt.params.len(), 5);
        let same = Stmt::new(false, "SELECT a FROM t WHERE b = ?").arg("x");
        assert_eq!(same.sql(), "SELECT a FROM t WHERE b = ?");
    }

    #[test]
    fn rows_of_values_are_bound_in_order() {
        let mut stmt = Stmt::new(true, "INSERT INTO t (a, b) VALUES ");
        stmt.values([(1, "x"), (2, "y")], |row, (a, b)| {
            row.push(Param::from(a as i64));
            row.push(Param::from(b));
        });
        assert_eq!(stmt.sql(), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        assert_eq!(stmt.params[3], Param::from("y"));
    }
}
