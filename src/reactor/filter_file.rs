//! The runtime trace filters' state file (docs/decisions.md §16): read once
//! at start-up, written whole after each change (add, del, expiry) and at
//! exit. A write goes to `<file>.tmp` (created 0600, O_NOFOLLOW), is
//! fsync'ed, renamed over the file and the directory fsync'ed, so a crash
//! leaves the old file or the new one, never half of one. A symbolic link
//! in place of either is refused, as in the spool directory.
//!
//! Only the reactor (and daemon.rs at start-up) calls this; the text is
//! made and read by trace/filter.rs. A write is a few hundred bytes and one
//! fsync, done only when an operator changed the filters or one expired.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FilterFileError {
    #[error(
        "trace filters file {path}: {err} (check the directory's owner and mode; a symbolic link is refused)"
    )]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("trace filters file {0} is larger than 1 MiB: not a filters file")]
    TooBig(PathBuf),
}

/// Far above 1000 filters of 256-byte values.
const MAX_FILE: u64 = 1 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilterFileError + '_ {
    move |err| FilterFileError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The file's text; None when there is none yet.
pub fn load(path: &Path) -> Result<Option<String>, FilterFileError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = String::new();
    (&mut f)
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    if text.len() as u64 > MAX_FILE {
        return Err(FilterFileError::TooBig(path.to_path_buf()));
    }
    Ok(Some(text))
}

/// Replaces the file's content with `text`, atomically.
pub fn save(path: &Path, text: &str) -> Result<(), FilterFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("st-ff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn save_then_load_and_links_refused() {
        let d = tmpdir("rt");
        let p = d.join("trace-filters");
        assert!(load(&p).unwrap().is_none());
        save(&p, "a\n").unwrap();
        save(&p, "b\n").unwrap();
        assert_eq!(load(&p).unwrap().as_deref(), Some("b\n"));
        assert!(!d.join("trace-filters.tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A link planted in place of the file (or its temporary) is
        // never followed.
        let target = d.join("elsewhere");
        std::fs::write(&target, "x").unwrap();
        let l = d.join("linked");
        std::os::unix::fs::symlink(&target, &l).unwrap();
        assert!(load(&l).is_err());
        std::os::unix::fs::symlink(&target, d.join("linked2.tmp")).unwrap();
        assert!(save(&d.join("linked2"), "y").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
