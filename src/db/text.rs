//! dbtext engine: Kamailio's db_text file format, one file per table in a
//! directory (`<dir>/<table>`, plus `<dir>/version`).
//!
//! Format (as Kamailio's db_text module reads and writes it): the first line
//! is the header, `name(type[,auto|,null])` per column separated by spaces
//! (types int, double, str, string, blob, time); then one line per row,
//! values separated by `:`, no trailing separator. In string values `\n`,
//! `\r`, `\t`, `\\`, `:` and NUL are written as `\n`, `\r`, `\t`, `\\`,
//! `\:` and `\0`; every other byte is written as is (so `msg` keeps its exact
//! bytes). Integers are decimal; an empty value reads back as NULL. The
//! `int,auto` column gets the largest id in the file plus one, as Kamailio
//! assigns it. `time_stamp(int)` holds Unix seconds.
//!
//! Rows are appended (Kamailio rewrites the whole file; appending gives the
//! same bytes). A batch is one `write` per table file; if any write fails,
//! the files written so far are cut back to their old length, so a batch is
//! all or nothing. No fsync (as SQLite's synchronous=NORMAL: a power loss
//! may lose the last batches).
//! Depends on std, log and the store/schema modules.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions as FsOpen};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::retention::{PurgeRule, PurgeTarget};
use super::schema::{self, Charset, ColumnInfo, ColumnKind, Layout};
use super::store::{Counts, Engine, Fault, MarkCas, Run};
use super::{DbError, Value};

/// Column value types of the dbtext header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextType {
    Int,
    Double,
    Str,
    String,
    Blob,
    Time,
}

/// One header column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextColumn {
    pub name: String,
    pub ty: TextType,
    pub auto: bool,
    pub nullable: bool,
}

/// A whole table file, values unescaped (an empty value is NULL or '').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTable {
    pub columns: Vec<TextColumn>,
    pub rows: Vec<Vec<Vec<u8>>>,
}

/// Why a header line does not parse. Columns are named as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("column {0:?} lacks (type)")]
    NoType(String),
    #[error("column {0:?} lacks the closing ')'")]
    Unclosed(String),
    #[error("column {name:?} has unknown type {ty:?}")]
    UnknownType { name: String, ty: String },
    #[error("column {0:?}: only int columns can be auto")]
    AutoNotInt(String),
    #[error("empty header line")]
    Empty,
}

/// Why a string value does not unescape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// The byte after the backslash.
    #[error("unknown escape \\{}", char::from(*.0))]
    Unknown(u8),
    #[error("value ends in a lone backslash")]
    LoneBackslash,
}

/// Parse a header line (without its newline).
pub(crate) fn parse_header(line: &str) -> Result<Vec<TextColumn>, HeaderError> {
    let mut cols = Vec::new();
    for tok in line.split(' ').filter(|t| !t.is_empty()) {
        let Some((name, rest)) = tok.split_once('(') else {
            return Err(HeaderError::NoType(tok.to_string()));
        };
        let Some(spec) = rest.strip_suffix(')') else {
            return Err(HeaderError::Unclosed(tok.to_string()));
        };
        let (ty, flag) = match spec.split_once(',') {
            Some((t, f)) => (t, Some(f)),
            None => (spec, None),
        };
        // Kamailio decides by the first letter; "str" vs "string" by an 'i'.
        let ty = match ty.as_bytes().first().map(u8::to_ascii_lowercase) {
            Some(b's') if ty.to_ascii_lowercase().contains('i') => TextType::String,
            Some(b's') => TextType::Str,
            Some(b'i') => TextType::Int,
            Some(b'd') => TextType::Double,
            Some(b'b') => TextType::Blob,
            Some(b't') => TextType::Time,
            _ => {
                return Err(HeaderError::UnknownType {
                    name: name.to_string(),
                    ty: ty.to_string(),
                });
            }
        };
        let flag = flag.map(|f| f.trim().to_ascii_lowercase());
        let auto = flag.as_deref().is_some_and(|f| f.starts_with('a'));
        if auto && ty != TextType::Int {
            return Err(HeaderError::AutoNotInt(name.to_string()));
        }
        cols.push(TextColumn {
            name: name.to_string(),
            ty,
            auto,
            nullable: flag.as_deref().is_some_and(|f| f.starts_with('n')),
        });
    }
    if cols.is_empty() {
        return Err(HeaderError::Empty);
    }
    Ok(cols)
}

/// Append `bytes` escaped for a dbtext string value.
pub(crate) fn escape_value(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b':' => out.extend_from_slice(b"\\:"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

/// Undo [`escape_value`]; an unknown escape is an error, as in Kamailio.
pub(crate) fn unescape_value(v: &[u8]) -> Result<Vec<u8>, EscapeError> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match it.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'\\') => b'\\',
            Some(b':') => b':',
            Some(b'0') => 0,
            Some(&c) => return Err(EscapeError::Unknown(c)),
            None => return Err(EscapeError::LoneBackslash),
        });
    }
    Ok(out)
}

/// Split a row line at the `:` separators that are not escaped.
pub fn split_row(line: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b':' => {
                out.push(&line[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(&line[start..line.len().max(start)]);
    out
}

/// Read a whole table file.
pub fn read_table_raw(path: &Path) -> Result<TextTable, DbError> {
    let data = fs::read(path).map_err(|source| DbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: String| DbError::BadTextTable {
        path: path.to_path_buf(),
        detail,
    };
    let mut lines = data.split(|b| *b == b'\n');
    let header = lines.next().unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8".into()))?;
    let columns = parse_header(header).map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields = split_row(line);
        if fields.len() != columns.len() {
            return Err(bad(format!(
                "row {} has {} values for {} columns",
                n + 1,
                fields.len(),
                columns.len()
            )));
        }
        let row = fields
            .into_iter()
            .map(unescape_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("row {}: {e}", n + 1)))?;
        rows.push(row);
    }
    Ok(TextTable { columns, rows })
}

/// The data rows of a table file as text (invalid UTF-8 shown as U+FFFD).
pub fn read_table(path: &Path) -> Result<Vec<Vec<String>>, DbError> {
    Ok(read_table_raw(path)?
        .rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .collect()
        })
        .collect())
}

/// What we know of a table file between batches.
struct FileState {
    columns: Vec<TextColumn>,
    /// The id the next row gets in the auto column.
    next_id: i64,
    /// The file does not end in a newline (edited by hand): add one first.
    needs_newline: bool,
}

pub(crate) struct Text {
    dir: PathBuf,
    files: HashMap<String, FileState>,
}

fn io_err(path: &Path, source: io::Error) -> DbError {
    DbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Text {
    pub fn open(
        dir: &Path,
        default_table: &str,
        opts: &super::OpenOptions,
    ) -> Result<Text, DbError> {
        if !dir.is_dir() {
            return Err(DbError::MissingDirectory {
                path: dir.to_path_buf(),
            });
        }
        let table_path = dir.join(default_table);
        if opts.create_sqlite_schema && !table_path.exists() {
            create_new(&table_path, schema::DBTEXT_TABLE)?;
            ensure_version_row(dir, default_table)?;
            log::info!(
                "siptrace db: created dbtext table {} (v4)",
                table_path.display()
            );
        }
        Ok(Text {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
        })
    }

    fn state(&mut self, table: &str) -> Result<&mut FileState, DbError> {
        if !self.files.contains_key(table) {
            let path = self.dir.join(table);
            let st = scan(&path)?;
            self.files.insert(table.to_string(), st);
        }
        match self.files.get_mut(table) {
            Some(s) => Ok(s),
            None => Err(io_err(
                &self.dir.join(table),
                io::Error::other("table state vanished"),
            )),
        }
    }
}

/// Create a file that must not exist yet (never clobber someone's table).
fn create_new(path: &Path, content: &str) -> Result<(), DbError> {
    let mut f = FsOpen::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(content.as_bytes()).map_err(|e| io_err(path, e))
}

/// Make `<dir>/version` list the table at version 4.
fn ensure_version_row(dir: &Path, table: &str) -> Result<(), DbError> {
    let path = dir.join("version");
    if !path.exists() {
        let content = schema::script_for_table(schema::DBTEXT_VERSION, table);
        return create_new(&path, &content);
    }
    let t = read_table_raw(&path)?;
    let name_col = t.columns.iter().position(|c| c.name == "table_name");
    let listed = name_col.is_some_and(|i| t.rows.iter().any(|r| r[i] == table.as_bytes()));
    if listed {
        return Ok(());
    }
    // Values in header order; only the columns Kamailio's file has.
    let mut line = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        if i > 0 {
            line.push(b':');
        }
        match c.name.as_str() {
            "id" => line.push(b'0'),
            "table_name" => escape_value(table.as_bytes(), &mut line),
            "table_version" => line.push(b'4'),
            _ => {}
        }
    }
    line.push(b'\n');
    append(&path, &line).map(|_| ())
}

/// Append bytes, adding the missing final newline first; returns the old length.
fn append(path: &Path, bytes: &[u8]) -> Result<u64, DbError> {
    let mut f = FsOpen::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let len = f.metadata().map_err(|e| io_err(path, e))?.len();
    let mut buf = Vec::with_capacity(bytes.len() + 1);
    if len > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(|e| io_err(path, e))?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    buf.extend_from_slice(bytes);
    f.write_all(&buf).map_err(|e| io_err(path, e))?;
    Ok(len)
}

/// Read a table file's header, its largest auto id and its last byte.
fn scan(path: &Path) -> Result<FileState, DbError> {
    let t = read_table_raw(path)?;
    let mut next_id = 1;
    if let Some(k) = t.columns.iter().position(|c| c.auto) {
        for r in &t.rows {
            let id = std::str::from_utf8(&r[k])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            next_id = next_id.max(id.saturating_add(1));
        }
    }
    let needs_newline = {
        let mut f = File::open(path).map_err(|e| io_err(path, e))?;
        let len = f.metadata().map_err(|e| io_err(path, e))?.len();
        let mut last = [b'\n'];
        if len > 0 {
            f.seek(SeekFrom::Start(len - 1))
                .and_then(|_| f.read_exact(&mut last))
                .map_err(|e| io_err(path, e))?;
        }
        last[0] != b'\n'
    };
    Ok(FileState {
        columns: t.columns,
        next_id,
        needs_newline,
    })
}

/// The lines of one run, ids taken from `next_id`.
fn render(run: &Run<'_>, st: &mut FileState) -> Vec<u8> {
    let layout: &Layout = &run.layout;
    // For each header column: the target it holds, if any.
    let map: Vec<Option<&schema::Target>> = st
        .columns
        .iter()
        .map(|c| {
            layout
                .targets
                .iter()
                .find(|t| t.column.name.eq_ignore_ascii_case(&c.name))
        })
        .collect();
    let mut out = Vec::with_capacity(run.rows.len() * 1024);
    if st.needs_newline {
        out.push(b'\n');
    }
    for row in &run.rows {
        for (i, (c, target)) in st.columns.iter().zip(&map).enumerate() {
            if i > 0 {
                out.push(b':');
            }
            if c.auto {
                out.extend_from_slice(st.next_id.to_string().as_bytes());
                st.next_id += 1;
                continue;
            }
            let Some(t) = target else { continue };
            match row.value_for(t) {
                Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                Value::Text(b) => escape_value(b, &mut out),
            }
        }
        out.push(b'\n');
    }
    out
}

impl Engine for Text {
    fn backend(&self) -> &'static str {
        "text"
    }

    fn target(&self) -> String {
        format!("text:{}", self.dir.display())
    }

    fn missing_table_hint(&self) -> String {
        format!(
            "copy sql/db_text/sip_trace into {} (or run scripts/siptraced-dbinit text://{})",
            self.dir.display(),
            self.dir.display()
        )
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<ColumnInfo>>, DbError> {
        let path = self.dir.join(table);
        if !path.is_file() {
            return Ok(None);
        }
        self.files.remove(table);
        let st = self.state(table)?;
        Ok(Some(
            st.columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    kind: match c.ty {
                        // db_text stores DATETIME as integer seconds.
                        TextType::Int | TextType::Time => ColumnKind::Integer,
                        TextType::Str | TextType::String | TextType::Blob => ColumnKind::Text,
                        TextType::Double => ColumnKind::Other,
                    },
                    max_chars: None,
                    max_bytes: None,
                    charset: Charset::Raw,
                })
                .collect(),
        ))
    }

    fn insert(&mut self, runs: &[Run<'_>], mark: Option<&MarkCas<'_>>) -> Result<Counts, Fault> {
        if mark.is_some() {
            // supports_marker() is false: the store never asks.
            return Err(Fault::Db(self.no_marker()));
        }
        // Render everything first: an error before any write leaves no trace.
        let mut per_file: Vec<(String, Vec<u8>)> = Vec::new();
        for run in runs {
            let table = run.layout.table.clone();
            let st = self.state(&table)?;
            let bytes = render(run, st);
            st.needs_newline = false;
            match per_file.iter_mut().find(|(t, _)| *t == table) {
                Some((_, buf)) => buf.extend_from_slice(&bytes),
                None => per_file.push((table, bytes)),
            }
        }
        let mut done: Vec<(PathBuf, u64)> = Vec::new();
        for (table, bytes) in &per_file {
            let path = self.dir.join(table);
            match append(&path, bytes) {
                Ok(old_len) => done.push((path, old_len)),
                Err(e) => {
                    for (p, len) in &done {
                        if let Err(err) = FsOpen::new()
                            .write(true)
                            .open(p)
                            .and_then(|f| f.set_len(*len))
                        {
                            log::error!(
                                "siptrace db: cannot undo a partial dbtext batch in {}: {err}",
                                p.display()
                            );
                        }
                    }
                    // Ids and newline state may be off now: re-read next time.
                    self.files.clear();
                    return Err(Fault::Db(e));
                }
            }
        }
        Ok(Counts::default())
    }

    fn purge_batch(
        &mut self,
        target: &PurgeTarget,
        rule: &PurgeRule,
        limit: u32,
    ) -> Result<u64, DbError> {
        let path = self.dir.join(&target.table);
        let n = purge_file(&path, target, rule, limit)?;
        // The next insert re-reads the file's state (ids, last newline).
        self.files.remove(&target.table);
        Ok(n)
    }

    fn row_cap_threshold(&mut self, table: &str, keep: u64) -> Result<Option<i64>, DbError> {
        let t = read_table_raw(&self.dir.join(table))?;
        let Some(k) = t
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case("id"))
        else {
            return Ok(None);
        };
        let mut ids: Vec<i64> = t.rows.iter().filter_map(|r| int_value(&r[k])).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(usize::try_from(keep.saturating_sub(1))
            .ok()
            .and_then(|i| ids.get(i).copied()))
    }

    fn drop_connection(&mut self) {}

    fn forget_statements(&mut self) {
        self.files.clear();
    }
}

fn int_value(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Rewrite a table file without the first `limit` rows (file order is id
/// order: rows are appended) that `rule` matches. Kept lines are copied as
/// they are; the new file replaces the old one by rename, so a crash leaves
/// either file whole. dbtext tables are small by nature (Kamailio loads
/// them whole), so one rewrite per batch is fine.
fn purge_file(
    path: &Path,
    target: &PurgeTarget,
    rule: &PurgeRule,
    limit: u32,
) -> Result<u64, DbError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let Some(header) = lines.next() else {
        return Ok(0);
    };
    let head = std::str::from_utf8(header).unwrap_or("").trim_end();
    let cols = parse_header(head).map_err(|e| DbError::BadTextTable {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let find = |name: &str| cols.iter().position(|c| c.name.eq_ignore_ascii_case(name));
    let (Some(id_k), Some(time_k)) = (find("id"), find(&target.time_col)) else {
        return Ok(0);
    };
    let method_k = target.method_col.as_deref().and_then(find);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(header);
    let mut deleted: u64 = 0;
    for line in lines {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let fields = split_row(body);
        let field = |k: usize| fields.get(k).map(|v| unescape_value(v).unwrap_or_default());
        let hit = deleted < u64::from(limit)
            && !body.is_empty()
            && match rule {
                PurgeRule::IdBelow(min) => field(id_k)
                    .and_then(|v| int_value(&v))
                    .is_some_and(|id| id < *min),
                PurgeRule::Older { before, method } => {
                    let old = field(time_k)
                        .and_then(|v| int_value(&v))
                        .is_some_and(|t| t < before.sec);
                    let method_ok = match (method, method_k) {
                        (None, _) => true,
                        (Some(m), Some(k)) => field(k).is_some_and(|v| v == m.as_bytes()),
                        (Some(_), None) => false,
                    };
                    old && method_ok
                }
            };
        if hit {
            deleted += 1;
        } else {
            out.extend_from_slice(line);
        }
    }
    if deleted == 0 {
        return Ok(0);
    }
    let tmp = path.with_extension("purge-tmp");
    fs::write(&tmp, &out)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| io_err(path, e))?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_rewrites_the_file_without_matching_rows() {
        use crate::db::retention::{Cutoff, TimeKind};
        let dir = std::env::temp_dir().join(format!("dbtext-purge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sip_trace");
        let mut text = schema::DBTEXT_TABLE.to_string();
        // id:time_stamp:time_us:callid:traced_user:msg:method:…
        for (id, t, method) in [
            (1, 100, "INVITE"),
            (2, 100, "OPTIONS"),
            (3, 300, "OPTIONS"),
            (4, 50, "BYE"),
        ] {
            text.push_str(&format!("{id}:{t}:0:c{id}::m\\:{id}:{method}::::::in\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let target = PurgeTarget {
            table: "sip_trace".into(),
            time_col: "time_stamp".into(),
            time_kind: TimeKind::UnixSeconds,
            method_col: Some("method".into()),
        };
        let older = |sec, method: Option<&str>| PurgeRule::Older {
            before: Cutoff {
                sec,
                local: String::new(),
            },
            method: method.map(str::to_string),
        };
        let ids = || -> Vec<String> {
            read_table(&path)
                .unwrap()
                .into_iter()
                .map(|r| r[0].clone())
                .collect()
        };
        // Only OPTIONS before 200: row 2.
        assert_eq!(
            purge_file(&path, &target, &older(200, Some("OPTIONS")), 1000).unwrap(),
            1
        );
        assert_eq!(ids(), ["1", "3", "4"]);
        // The limit bounds a batch, oldest (first in the file) first.
        assert_eq!(purge_file(&path, &target, &older(200, None), 1).unwrap(), 1);
        assert_eq!(ids(), ["3", "4"]);
        assert_eq!(
            purge_file(&path, &target, &PurgeRule::IdBelow(4), 10).unwrap(),
            1
        );
        assert_eq!(ids(), ["4"]);
        assert_eq!(
            purge_file(&path, &target, &PurgeRule::IdBelow(4), 10).unwrap(),
            0
        );
        // Kept lines are copied byte for byte (escapes included).
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("4:50:0:c4::m\\:4:BYE::::::in\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn escaping_round_trips() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a:b", b"a\\:b"),
            (b"l1\r\nl2\n", b"l1\\r\\nl2\\n"),
            (b"tab\there", b"tab\\there"),
            (b"back\\slash", b"back\\\\slash"),
            (b"nul\0byte", b"nul\\0byte"),
            (b"\xff\xfe", b"\xff\xfe"),
            (b"", b""),
        ];
        for (raw, escaped) in cases {
            let mut out = Vec::new();
            escape_value(raw, &mut out);
            assert_eq!(&out, escaped, "{raw:?}");
            assert_eq!(&unescape_value(&out).unwrap(), raw);
        }
        let cases: &[(&[u8], &str)] = &[
            (b"bad\\q", "unknown escape \\q"),
            (b"end\\", "value ends in a lone backslash"),
        ];
        for (v, want) in cases {
            assert_eq!(unescape_value(v).unwrap_err().to_string(), *want, "{v:?}");
        }
    }

    #[test]
    fn splits_rows_at_unescaped_colons() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"1:a:b", &[b"1", b"a", b"b"]),
            (b"1:a\\:b:", &[b"1", b"a\\:b", b""]),
            (b"::", &[b"", b"", b""]),
            (b"x\\\\:y", &[b"x\\\\", b"y"]),
            (b"", &[b""]),
        ];
        for (line, want) in cases {
            assert_eq!(&split_row(line), want, "{line:?}");
        }
    }

    #[test]
    fn parses_kamailio_headers() {
        let h = parse_header(schema::DBTEXT_TABLE.trim_end_matches('\n')).unwrap();
        assert_eq!(h.len(), 13);
        assert_eq!(
            h[0],
            TextColumn {
                name: "id".into(),
                ty: TextType::Int,
                auto: true,
                nullable: false
            }
        );
        assert_eq!(h[1].ty, TextType::Int);
        assert_eq!(h[3].ty, TextType::String);
        let h = parse_header("a(str) b(int,null) c(time) d(double) e(blob)").unwrap();
        let types: Vec<TextType> = h.iter().map(|c| c.ty).collect();
        assert_eq!(
            types,
            [
                TextType::Str,
                TextType::Int,
                TextType::Time,
                TextType::Double,
                TextType::Blob
            ]
        );
        assert!(h[1].nullable);
        let cases = [
            ("", "empty header line"),
            ("a", "column \"a\" lacks (type)"),
            ("a(x)", "column \"a\" has unknown type \"x\""),
            ("a(int", "column \"a(int\" lacks the closing ')'"),
            ("a(str,auto)", "column \"a\": only int columns can be auto"),
        ];
        for (bad, want) in cases {
            assert_eq!(parse_header(bad).unwrap_err().to_string(), want, "{bad:?}");
        }
    }
}
