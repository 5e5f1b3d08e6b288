//! Retention: which rows of the default trace table are old enough (or
//! beyond the row cap) to delete, and the bounded DELETE statements each SQL
//! backend runs for it (docs/decisions.md §14).
//!
//! Pure: policy values and statement text only, so the builders are tested
//! without a server. Identifiers enter statements only after
//! [`super::valid_table_name`] or from the catalog, quoted; cut-off times,
//! methods and ids are always bound parameters. Only the batch size (a
//! number of our own) is spliced into MySQL's `LIMIT`, which the server does
//! not accept as a placeholder in every version.
//! Depends on std only.

use std::time::Duration;

/// `retention_method "OPTIONS=1h"`: rows of this method older than this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodAge {
    pub method: String,
    pub max_age: Duration,
}

/// The retention modparams, checked at load (config.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `retention`: rows older than this go, whatever their method.
    pub max_age: Option<Duration>,
    /// `retention_rows`: the oldest rows beyond this many go.
    pub max_rows: Option<u64>,
    /// `retention_method`, in configuration order.
    pub methods: Vec<MethodAge>,
    /// `retention_interval`: how often an idle daemon looks for work.
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            max_age: None,
            max_rows: None,
            methods: Vec::new(),
            // A minute: rows age by seconds, so checking more often only
            // costs queries that find nothing.
            interval: Duration::from_secs(60),
        }
    }
}

impl RetentionPolicy {
    /// Whether any limit is set (else the daemon never deletes).
    pub fn is_active(&self) -> bool {
        self.max_age.is_some() || self.max_rows.is_some() || !self.methods.is_empty()
    }
}

/// A point in time as each column type compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    /// Unix seconds (dbtext's integer `time_stamp`).
    pub sec: i64,
    /// Local time `YYYY-MM-DD HH:MM:SS`, as the SQL backends store it.
    pub local: String,
}

/// One kind of deletion, run in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeRule {
    /// Rows whose time is before `before`; only of `method` when given.
    Older {
        before: Cutoff,
        method: Option<String>,
    },
    /// Rows whose id is below this one (the row cap's threshold).
    IdBelow(i64),
}

/// How the table's time column compares (from its layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// Text or DATETIME: compared with the local-time text.
    Local,
    /// A PostgreSQL `timestamp`: the text is cast.
    PgTimestamp,
    /// Integer Unix seconds (dbtext, or a table declared so).
    UnixSeconds,
}

/// The table a purge works on, with its columns as the catalog names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeTarget {
    pub table: String,
    pub time_col: String,
    pub time_kind: TimeKind,
    /// None: the table has no method column, method rules find nothing.
    pub method_col: Option<String>,
}

/// The quoting of one SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
            // Unquoted identifiers fold to lower case in PostgreSQL.
            Dialect::Postgres => format!("\"{}\"", ident.to_ascii_lowercase().replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// The n-th (1-based) placeholder.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
            Dialect::Mysql => "?".to_string(),
        }
    }
}

/// The DELETE for one batch of `rule`. Parameters, in order: the cut-off
/// (or the id threshold), the method when the rule has one, then (SQLite
/// and PostgreSQL) the batch size. `None` when the rule cannot match
/// (a method rule on a table without a method column).
pub fn delete_batch_sql(
    d: Dialect,
    t: &PurgeTarget,
    rule: &PurgeRule,
    limit: u32,
) -> Option<String> {
    let q = |s: &str| d.quote(s);
    let table = q(&t.table);
    let id = q("id");
    let mut cond = match rule {
        PurgeRule::Older { .. } => {
            let p = d.param(1);
            let value = match (d, t.time_kind) {
                (Dialect::Postgres, TimeKind::PgTimestamp) => format!("{p}::text::timestamp"),
                (Dialect::Postgres, TimeKind::UnixSeconds) => format!("{p}::int8"),
                (Dialect::Postgres, TimeKind::Local) => format!("{p}::text"),
                _ => p,
            };
            format!("{} < {value}", q(&t.time_col))
        }
        PurgeRule::IdBelow(_) => match d {
            Dialect::Postgres => format!("{id} < {}::int8", d.param(1)),
            _ => format!("{id} < {}", d.param(1)),
        },
    };
    let mut n = 1;
    if let PurgeRule::Older {
        method: Some(_), ..
    } = rule
    {
        let col = t.method_col.as_deref()?;
        n += 1;
        let p = match d {
            Dialect::Postgres => format!("{}::text", d.param(n)),
            _ => d.param(n),
        };
        cond.push_str(&format!(" AND {} = {p}", q(col)));
    }
    Some(match d {
        // The oldest first through the primary key: the subquery stops after
        // `limit` ids, so one statement never touches more rows than that.
        Dialect::Sqlite => format!(
            "DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE {cond} \
             ORDER BY {id} LIMIT {})",
            d.param(n + 1)
        ),
        Dialect::Postgres => format!(
            "DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE {cond} \
             ORDER BY {id} LIMIT {}::int8)",
            d.param(n + 1)
        ),
        Dialect::Mysql => {
            format!("DELETE FROM {table} WHERE {cond} ORDER BY {id} LIMIT {limit}")
        }
    })
}

/// The id of the `keep`-th newest row (parameter: `keep - 1`, except MySQL
/// where the offset is spliced as a number of ours); rows below it are
/// beyond the cap. Walks the primary key from its end, `keep` entries.
pub fn row_cap_threshold_sql(d: Dialect, table: &str, keep: u64) -> String {
    let table = d.quote(table);
    let id = d.quote("id");
    match d {
        Dialect::Sqlite => format!("SELECT {id} FROM {table} ORDER BY {id} DESC LIMIT 1 OFFSET ?1"),
        Dialect::Postgres => {
            format!("SELECT {id}::int8 FROM {table} ORDER BY {id} DESC LIMIT 1 OFFSET $1::int8")
        }
        Dialect::Mysql => format!(
            "SELECT {id} FROM {table} ORDER BY {id} DESC LIMIT 1 OFFSET {}",
            keep.saturating_sub(1)
        ),
    }
}

/// How many ids the table spans (max − min + 1; NULL when empty): never
/// fewer than its rows, and two index look-ups only. When it is within the
/// cap, the walk of [`row_cap_threshold_sql`] is skipped.
pub fn id_span_sql(d: Dialect, table: &str) -> String {
    let table = d.quote(table);
    let id = d.quote("id");
    let cast = if d == Dialect::Postgres { "::int8" } else { "" };
    format!("SELECT ((SELECT max({id}) FROM {table}) - (SELECT min({id}) FROM {table}) + 1){cast}")
}

/// The name of the day partition of `table` for `day` (`YYYY-MM-DD`):
/// `<table>_pYYYYMMDD`, as sql/postgres/siptrace-partitioned.sql names them.
/// None when that would exceed PostgreSQL's 63-byte identifiers.
pub fn partition_name(table: &str, day: &str) -> Option<String> {
    let digits: String = day.chars().filter(char::is_ascii_digit).collect();
    let name = format!("{}_p{digits}", table.to_ascii_lowercase());
    (digits.len() == 8 && name.len() <= 63).then_some(name)
}

/// The day (`YYYY-MM-DD`) of a partition named by [`partition_name`].
pub fn partition_day(table: &str, name: &str) -> Option<String> {
    let prefix = format!("{}_p", table.to_ascii_lowercase());
    let d = name.strip_prefix(&prefix)?;
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: TimeKind) -> PurgeTarget {
        PurgeTarget {
            table: "sip_trace".into(),
            time_col: "time_stamp".into(),
            time_kind: kind,
            method_col: Some("method".into()),
        }
    }

    fn older(method: Option<&str>) -> PurgeRule {
        PurgeRule::Older {
            before: Cutoff {
                sec: 0,
                local: "1970-01-01 00:00:00".into(),
            },
            method: method.map(str::to_string),
        }
    }

    #[test]
    fn sqlite_batches_go_through_the_primary_key() {
        let t = target(TimeKind::Local);
        assert_eq!(
            delete_batch_sql(Dialect::Sqlite, &t, &older(None), 1000).unwrap(),
            "DELETE FROM \"sip_trace\" WHERE \"id\" IN (SELECT \"id\" FROM \"sip_trace\" \
             WHERE \"time_stamp\" < ?1 ORDER BY \"id\" LIMIT ?2)"
        );
        assert_eq!(
            delete_batch_sql(Dialect::Sqlite, &t, &older(Some("OPTIONS")), 1000).unwrap(),
            "DELETE FROM \"sip_trace\" WHERE \"id\" IN (SELECT \"id\" FROM \"sip_trace\" \
             WHERE \"time_stamp\" < ?1 AND \"method\" = ?2 ORDER BY \"id\" LIMIT ?3)"
        );
        assert_eq!(
            delete_batch_sql(Dialect::Sqlite, &t, &PurgeRule::IdBelow(5), 10).unwrap(),
            "DELETE FROM \"sip_trace\" WHERE \"id\" IN (SELECT \"id\" FROM \"sip_trace\" \
             WHERE \"id\" < ?1 ORDER BY \"id\" LIMIT ?2)"
        );
    }

    #[test]
    fn postgres_casts_text_parameters() {
        let t = target(TimeKind::PgTimestamp);
        assert_eq!(
            delete_batch_sql(Dialect::Postgres, &t, &older(Some("OPTIONS")), 1000).unwrap(),
            "DELETE FROM \"sip_trace\" WHERE \"id\" IN (SELECT \"id\" FROM \"sip_trace\" \
             WHERE \"time_stamp\" < $1::text::timestamp AND \"method\" = $2::text \
             ORDER BY \"id\" LIMIT $3::int8)"
        );
        assert_eq!(
            delete_batch_sql(Dialect::Postgres, &t, &PurgeRule::IdBelow(5), 10).unwrap(),
            "DELETE FROM \"sip_trace\" WHERE \"id\" IN (SELECT \"id\" FROM \"sip_trace\" \
             WHERE \"id\" < $1::int8 ORDER BY \"id\" LIMIT $2::int8)"
        );
    }

    #[test]
    fn mysql_deletes_with_order_and_limit() {
        let t = target(TimeKind::Local);
        assert_eq!(
            delete_batch_sql(Dialect::Mysql, &t, &older(Some("OPTIONS")), 500).unwrap(),
            "DELETE FROM `sip_trace` WHERE `time_stamp` < ? AND `method` = ? ORDER BY `id` LIMIT 500"
        );
        assert_eq!(
            row_cap_threshold_sql(Dialect::Mysql, "sip_trace", 100),
            "SELECT `id` FROM `sip_trace` ORDER BY `id` DESC LIMIT 1 OFFSET 99"
        );
    }

    #[test]
    fn the_id_span_takes_two_index_lookups() {
        assert_eq!(
            id_span_sql(Dialect::Sqlite, "sip_trace"),
            "SELECT ((SELECT max(\"id\") FROM \"sip_trace\") - \
             (SELECT min(\"id\") FROM \"sip_trace\") + 1)"
        );
        assert!(id_span_sql(Dialect::Postgres, "t").ends_with("+ 1)::int8"));
        assert_eq!(
            row_cap_threshold_sql(Dialect::Sqlite, "t", 5),
            "SELECT \"id\" FROM \"t\" ORDER BY \"id\" DESC LIMIT 1 OFFSET ?1"
        );
    }

    #[test]
    fn a_method_rule_needs_a_method_column() {
        let mut t = target(TimeKind::Local);
        t.method_col = None;
        assert!(delete_batch_sql(Dialect::Sqlite, &t, &older(Some("OPTIONS")), 1).is_none());
        assert!(delete_batch_sql(Dialect::Sqlite, &t, &older(None), 1).is_some());
    }

    #[test]
    fn identifiers_are_quoted() {
        let mut t = target(TimeKind::Local);
        t.table = "Odd\"Name".into();
        let sql = delete_batch_sql(Dialect::Postgres, &t, &PurgeRule::IdBelow(1), 1).unwrap();
        assert!(sql.contains("\"odd\"\"name\""), "{sql}");
    }

    #[test]
    fn partition_names_round_trip() {
        let n = partition_name("sip_trace", "2026-12-07").unwrap();
        assert_eq!(n, "sip_trace_p20261207");
        assert_eq!(partition_day("sip_trace", &n).unwrap(), "2026-12-07");
        assert_eq!(partition_day("sip_trace", "sip_trace_default"), None);
        assert_eq!(partition_name(&"t".repeat(60), "2026-12-07"), None);
    }
}
