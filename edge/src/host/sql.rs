//! Small helpers for the SQLite storage of the Durable Objects (metrics store, flag writer):
//! typed parameters and rows read back in column order.

use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

pub(crate) fn v(s: &str) -> SqlStorageValue {
    SqlStorageValue::from(s)
}

pub(crate) fn n(x: u64) -> SqlStorageValue {
    SqlStorageValue::from(i64::try_from(x).unwrap_or(i64::MAX))
}

pub(crate) fn f(x: f64) -> SqlStorageValue {
    SqlStorageValue::from(x)
}

pub(crate) fn rows(
    sql: &SqlStorage,
    query: &str,
    args: Vec<SqlStorageValue>,
) -> worker::Result<Vec<Vec<Value>>> {
    let cursor = sql.exec(query, args)?;
    let out: Vec<Value> = cursor.to_array()?;
    // Rows come back as objects keyed by column name; keep them in column order.
    let columns = cursor.column_names();
    Ok(out
        .into_iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect())
}

pub(crate) fn num(v: &Value) -> u64 {
    v.as_f64().map_or(0, |x| x.max(0.0) as u64)
}

pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}
