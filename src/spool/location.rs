//! Which directory holds the spool (docs/decisions.md §9): `spool_dir` when set;
//! else `<state_dir>/spool` when `state_dir` is set (or, failing that, the
//! first directory of `$STATE_DIRECTORY`, which systemd sets for a unit
//! with `StateDirectory=`, and the integration tests set to their temp
//! dir so that daemons running side by side never share a spool); else
//! `/var/lib/siptraced/spool` when /var/lib/siptraced exists and is
//! writable; else `<file>.spool` beside the SQLite file; else
//! `/var/tmp/siptraced-<uid>/spool` (kept across reboots, unlike /tmp),
//! which the start-up log names.
//!
//! Pure: whether a directory is usable is asked of the caller.

use std::path::{Path, PathBuf};

/// The default state directory of a packaged install.
pub(crate) const VAR_LIB: &str = "/var/lib/siptraced";

/// Why this directory was chosen (for the start-up log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    SpoolDir,
    StateDir,
    EnvStateDir,
    VarLib,
    BesideSqlite,
    Fallback,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::SpoolDir => "modparam spool_dir",
            Origin::StateDir => "modparam state_dir",
            Origin::EnvStateDir => "$STATE_DIRECTORY",
            Origin::VarLib => "default state directory",
            Origin::BesideSqlite => "beside the SQLite file",
            Origin::Fallback => {
                "fallback: no state_dir set, /var/lib/siptraced not writable, no SQLite file"
            }
        }
    }
}

/// Choose the spool directory. `sqlite_file` is the db_url's file for a
/// SQLite URL; `writable(dir)` says whether an existing directory can be
/// written by the daemon.
pub(crate) fn choose(
    spool_dir: Option<&str>,
    state_dir: Option<&str>,
    env_state_dir: Option<&str>,
    sqlite_file: Option<&Path>,
    uid: u32,
    writable: impl Fn(&Path) -> bool,
) -> (PathBuf, Origin) {
    if let Some(d) = spool_dir {
        return (PathBuf::from(d), Origin::SpoolDir);
    }
    if let Some(d) = state_dir {
        return (Path::new(d).join("spool"), Origin::StateDir);
    }
    // systemd: several directories are separated by ':'; ours is the first.
    if let Some(d) = env_state_dir.and_then(|v| v.split(':').next())
        && !d.is_empty()
    {
        return (Path::new(d).join("spool"), Origin::EnvStateDir);
    }
    let var_lib = Path::new(VAR_LIB);
    if writable(var_lib) {
        return (var_lib.join("spool"), Origin::VarLib);
    }
    if let Some(f) = sqlite_file
        && let Some(name) = f.file_name()
    {
        let dir = match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if writable(dir) {
            let mut spool = name.to_os_string();
            spool.push(".spool");
            return (dir.join(spool), Origin::BesideSqlite);
        }
    }
    (
        PathBuf::from(format!("/var/tmp/siptraced-{uid}/spool")),
        Origin::Fallback,
    )
}

/// Whether `dir` exists as a directory we may write into (access(2) W_OK).
pub(crate) fn writable_dir(dir: &Path) -> bool {
    dir.is_dir() && nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_order() {
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        let only = |ok: &'static str| move |p: &Path| p == Path::new(ok);
        let db = Some(Path::new("/srv/trace/t.db"));
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a Path>,
            Box<dyn Fn(&Path) -> bool>,
            &'a str,
            Origin,
        );
        let cases: Vec<Case> = vec![
            (
                Some("/s"),
                Some("/st"),
                Some("/e"),
                db,
                Box::new(all),
                "/s",
                Origin::SpoolDir,
            ),
            (
                None,
                Some("/st"),
                Some("/e"),
                db,
                Box::new(all),
                "/st/spool",
                Origin::StateDir,
            ),
            (
                None,
                None,
                Some("/e:/f"),
                db,
                Box::new(all),
                "/e/spool",
                Origin::EnvStateDir,
            ),
            (
                None,
                None,
                Some(""),
                db,
                Box::new(all),
                "/var/lib/siptraced/spool",
                Origin::VarLib,
            ),
            (
                None,
                None,
                None,
                db,
                Box::new(all),
                "/var/lib/siptraced/spool",
                Origin::VarLib,
            ),
            (
                None,
                None,
                None,
                db,
                Box::new(only("/srv/trace")),
                "/srv/trace/t.db.spool",
                Origin::BesideSqlite,
            ),
            (
                None,
                None,
                None,
                Some(Path::new("t.db")),
                Box::new(only(".")),
                "./t.db.spool",
                Origin::BesideSqlite,
            ),
            (
                None,
                None,
                None,
                db,
                Box::new(none),
                "/var/tmp/siptraced-7/spool",
                Origin::Fallback,
            ),
            (
                None,
                None,
                None,
                None,
                Box::new(only("/srv/trace")),
                "/var/tmp/siptraced-7/spool",
                Origin::Fallback,
            ),
        ];
        for (spool, state, env, file, w, want, origin) in cases {
            assert_eq!(
                choose(spool, state, env, file, 7, w),
                (PathBuf::from(want), origin),
                "{spool:?} {state:?} {env:?} {file:?}"
            );
        }
    }
}
