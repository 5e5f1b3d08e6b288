//! The `sip_trace` table as the backends see it: which identifiers are
//! allowed, which columns a table has (layout v1–v4, docs/decisions.md §3), and the
//! embedded creation scripts. Pure: backends read the catalog and hand the
//! column list in; nothing here does I/O.

use std::fmt;

/// Longest accepted table name. 64 is MySQL's identifier limit; PostgreSQL
/// allows 63 bytes, so a 64-byte name there simply is not found (refused).
pub(crate) const TABLE_NAME_MAX: usize = 64;

/// `[A-Za-z_][A-Za-z0-9_]{0,63}` — the only table names ever put into SQL.
pub fn valid_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= TABLE_NAME_MAX
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// One value of a [`crate::db::Row`], i.e. one `sip_trace` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Msg,
    CallId,
    Method,
    Status,
    FromIp,
    ToIp,
    Time,
    Direction,
    FromTag,
    TracedUser,
    TimeUs,
    ToTag,
}

impl Field {
    /// Insert order of Kamailio 5 (docs/kamailio.md §5.3); a layout keeps the
    /// subset its table has, in this order.
    pub(crate) const INSERT_ORDER: [Field; 12] = [
        Field::Msg,
        Field::CallId,
        Field::Method,
        Field::Status,
        Field::FromIp,
        Field::ToIp,
        Field::Time,
        Field::Direction,
        Field::FromTag,
        Field::TracedUser,
        Field::TimeUs,
        Field::ToTag,
    ];

    /// Column names, most preferred first: `time_stamp` (v2+) before `date` (v1).
    pub(crate) fn column_names(self) -> &'static [&'static str] {
        match self {
            Field::Msg => &["msg"],
            Field::CallId => &["callid"],
            Field::Method => &["method"],
            Field::Status => &["status"],
            Field::FromIp => &["fromip"],
            Field::ToIp => &["toip"],
            Field::Time => &["time_stamp", "date"],
            Field::Direction => &["direction"],
            Field::FromTag => &["fromtag"],
            Field::TracedUser => &["traced_user"],
            Field::TimeUs => &["time_us"],
            Field::ToTag => &["totag"],
        }
    }

    /// Present since v1; a table without one of these cannot hold trace rows.
    pub(crate) fn required(self) -> bool {
        !matches!(self, Field::TimeUs | Field::ToTag)
    }
}

/// What a column's declared type means for the value written into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Character data (TEXT, VARCHAR, dbtext `string`/`str`, SQLite anything).
    Text,
    /// An integer type (dbtext `int`, SQL INTEGER…).
    Integer,
    /// A date/time type; the payload is the SQL type name to cast text into
    /// (PostgreSQL `timestamp`, `timestamptz`, `date`), or "" where the server
    /// converts a string itself (MySQL DATETIME).
    Timestamp(&'static str),
    /// Anything else (bytea, blobs in PostgreSQL, json…): not written by us.
    Other,
}

/// Which characters a text column can store; decides escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Any bytes (SQLite TEXT, dbtext, MySQL binary strings).
    Raw,
    /// Valid UTF-8 without NUL (PostgreSQL UTF8; MySQL utf8mb4).
    Utf8,
    /// UTF-8 limited to the Basic Multilingual Plane (MySQL utf8mb3).
    Bmp,
    /// ASCII only (any other server or column encoding: always safe).
    Ascii,
    /// One byte per character, every byte value defined (MySQL latin1, the
    /// charset kamdbctl gives Kamailio's databases): the bytes go in
    /// unconverted, as Kamailio stored them; only NUL is escaped.
    Latin1,
}

/// One column as read from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub kind: ColumnKind,
    /// Declared length in characters (VARCHAR(n)); `None` = unbounded.
    pub max_chars: Option<usize>,
    /// Length limit in bytes (MySQL TEXT = 65535); `None` = unbounded.
    pub max_bytes: Option<usize>,
    pub charset: Charset,
}

impl ColumnInfo {
    /// An unbounded text column accepting any bytes.
    pub fn text(name: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            kind: ColumnKind::Text,
            max_chars: None,
            max_bytes: None,
            charset: Charset::Raw,
        }
    }
}

/// A column we write: the row field and the column holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub field: Field,
    pub column: ColumnInfo,
}

/// The columns of one table that trace rows are written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: String,
    /// In [`Field::INSERT_ORDER`].
    pub targets: Vec<Target>,
    /// Every column of the table in catalog order (dbtext writes them all).
    pub all_columns: Vec<ColumnInfo>,
}

/// Why a table cannot take trace rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutProblem {
    /// Required columns that are absent.
    Missing(Vec<&'static str>),
    /// A column whose type cannot hold the value (e.g. `msg bytea`).
    WrongType {
        column: String,
        expected: &'static str,
    },
}

impl fmt::Display for LayoutProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutProblem::Missing(cols) => {
                write!(f, "missing column(s) {}", cols.join(", "))
            }
            LayoutProblem::WrongType { column, expected } => {
                write!(f, "column {column} is not {expected}")
            }
        }
    }
}

impl Layout {
    /// Match a table's columns (names compared case-insensitively) to the
    /// row fields; what the table lacks among the optional ones is not written.
    pub fn detect(table: &str, columns: &[ColumnInfo]) -> Result<Layout, LayoutProblem> {
        let find = |name: &str| {
            columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .cloned()
        };
        let mut targets = Vec::new();
        let mut missing = Vec::new();
        for field in Field::INSERT_ORDER {
            let found = field.column_names().iter().find_map(|n| find(n));
            match found {
                Some(column) => {
                    check_kind(field, &column)?;
                    targets.push(Target { field, column });
                }
                None if field.required() => missing.push(field.column_names()[0]),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(LayoutProblem::Missing(missing));
        }
        Ok(Layout {
            table: table.to_string(),
            targets,
            all_columns: columns.to_vec(),
        })
    }

    /// Kamailio's table version this layout corresponds to (docs/kamailio.md §5):
    /// 1 = `date`, 2 = `time_stamp`, 3 = + `time_us`, 4 = + `totag`.
    pub fn version(&self) -> u8 {
        let has = |f: Field| self.targets.iter().any(|t| t.field == f);
        let time = self.targets.iter().find(|t| t.field == Field::Time);
        if time.is_some_and(|t| t.column.name.eq_ignore_ascii_case("date")) {
            1
        } else if has(Field::ToTag) {
            4
        } else if has(Field::TimeUs) {
            3
        } else {
            2
        }
    }

    pub fn has(&self, field: Field) -> bool {
        self.targets.iter().any(|t| t.field == field)
    }
}

fn check_kind(field: Field, column: &ColumnInfo) -> Result<(), LayoutProblem> {
    let ok = match (field, &column.kind) {
        (_, ColumnKind::Other) => false,
        (Field::Time, _) => true,
        (Field::TimeUs, ColumnKind::Integer | ColumnKind::Text) => true,
        (Field::TimeUs, _) => false,
        (_, ColumnKind::Text) => true,
        (_, _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LayoutProblem::WrongType {
            column: column.name.clone(),
            expected: match field {
                Field::Time => "a date/time, integer or text type",
                Field::TimeUs => "an integer type",
                _ => "a text type",
            },
        })
    }
}

/// The SQLite creation script (sql/sqlite/siptrace-create.sql), applied to a
/// new, empty SQLite file so the default configuration needs no set-up.
pub(crate) const SQLITE_CREATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/sqlite/siptrace-create.sql"
));

/// The dbtext table file (sql/db_text/sip_trace): its header line.
pub(crate) const DBTEXT_TABLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/db_text/sip_trace"
));

/// The dbtext version file (sql/db_text/version).
pub(crate) const DBTEXT_VERSION: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/db_text/version"));

/// A creation script for a default table not named `sip_trace`: the scripts
/// use `sip_trace` only as the identifier (table, index prefixes, version
/// row), so substituting a validated name is safe.
pub(crate) fn script_for_table(script: &str, table: &str) -> String {
    debug_assert!(valid_table_name(table));
    script.replace("sip_trace", table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        let cases = [
            ("sip_trace", true),
            ("_x", true),
            ("T1", true),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
            ("", false),
            ("1abc", false),
            ("sip_trace; DROP TABLE x", false),
            ("a-b", false),
            ("a.b", false),
            ("\"q\"", false),
            ("tab\0", false),
            ("é", false),
        ];
        for (name, ok) in cases {
            assert_eq!(valid_table_name(name), ok, "{name:?}");
        }
    }

    fn cols(names: &[&str]) -> Vec<ColumnInfo> {
        names.iter().map(|n| ColumnInfo::text(n)).collect()
    }

    const V2: &[&str] = &[
        "id",
        "time_stamp",
        "callid",
        "traced_user",
        "msg",
        "method",
        "status",
        "fromip",
        "toip",
        "fromtag",
        "direction",
    ];

    #[test]
    fn detects_versions() {
        let with = |extra: &[&str], rename: Option<(&str, &str)>| {
            let mut v: Vec<&str> = V2.to_vec();
            v.extend_from_slice(extra);
            if let Some((from, to)) = rename {
                for n in v.iter_mut() {
                    if *n == from {
                        *n = to;
                    }
                }
            }
            Layout::detect("t", &cols(&v)).map(|l| l.version())
        };
        assert_eq!(with(&[], Some(("time_stamp", "date"))), Ok(1));
        assert_eq!(with(&[], None), Ok(2));
        assert_eq!(with(&["time_us"], None), Ok(3));
        assert_eq!(with(&["time_us", "totag"], None), Ok(4));
        assert_eq!(with(&["TIME_US", "ToTag"], None), Ok(4));
        assert_eq!(
            with(&[], Some(("callid", "call_id"))),
            Err(LayoutProblem::Missing(vec!["callid"]))
        );
    }

    #[test]
    fn insert_order_is_kamailios() {
        let mut v: Vec<&str> = V2.to_vec();
        v.extend_from_slice(&["totag", "time_us"]);
        let l = Layout::detect("t", &cols(&v)).unwrap();
        let names: Vec<&str> = l.targets.iter().map(|t| t.column.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "msg",
                "callid",
                "method",
                "status",
                "fromip",
                "toip",
                "time_stamp",
                "direction",
                "fromtag",
                "traced_user",
                "time_us",
                "totag"
            ]
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        let mut c = cols(V2);
        c[4].kind = ColumnKind::Other; // msg bytea
        assert!(matches!(
            Layout::detect("t", &c),
            Err(LayoutProblem::WrongType { .. })
        ));
        let mut c = cols(V2);
        c.push(ColumnInfo {
            kind: ColumnKind::Timestamp("timestamp"),
            ..ColumnInfo::text("time_us")
        });
        assert!(Layout::detect("t", &c).is_err());
    }

    #[test]
    fn scripts_substitute_table_name() {
        let s = script_for_table(SQLITE_CREATE, "trace_b");
        assert!(s.contains("CREATE TABLE IF NOT EXISTS trace_b"));
        assert!(!s.contains("sip_trace"));
    }
}
