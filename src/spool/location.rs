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
//! A spool directory holds trace rows (whole SIP messages) and files the
//! daemon writes, so on a shared host it must be the daemon's alone
//! ([`judge_dir`], [`judge_parent`]): owned by its user, writable by nobody
//! else, not a symbolic link, in a parent nobody else can rename it in. An
//! automatic candidate that fails this is skipped (and the reason logged);
//! a configured one is a start-up error.
//!
//! Pure: whether a directory is usable, and what lstat says of it, is asked
//! of the caller.

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

/// The spool directory chosen, and the automatic candidates passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub dir: PathBuf,
    pub origin: Origin,
    /// One line per automatic candidate skipped because it was unsafe, for
    /// the log.
    pub skipped: Vec<String>,
}

/// Choose the spool directory. `sqlite_file` is the db_url's file for a
/// SQLite URL; `writable(dir)` says whether an existing directory can be
/// written by the daemon; `safe(spool)` whether a spool directory (absent,
/// or present and ours alone) may be used, else why not. The last fallback
/// is taken whatever `safe` says: opening it then fails with the reason.
pub(crate) fn choose(
    spool_dir: Option<&str>,
    state_dir: Option<&str>,
    env_state_dir: Option<&str>,
    sqlite_file: Option<&Path>,
    uid: u32,
    writable: impl Fn(&Path) -> bool,
    safe: impl Fn(&Path) -> Result<(), String>,
) -> Choice {
    let chosen = |dir: PathBuf, origin, skipped| Choice {
        dir,
        origin,
        skipped,
    };
    if let Some(d) = spool_dir {
        return chosen(PathBuf::from(d), Origin::SpoolDir, Vec::new());
    }
    if let Some(d) = state_dir {
        return chosen(Path::new(d).join("spool"), Origin::StateDir, Vec::new());
    }
    // systemd: several directories are separated by ':'; ours is the first.
    if let Some(d) = env_state_dir.and_then(|v| v.split(':').next())
        && !d.is_empty()
    {
        return chosen(Path::new(d).join("spool"), Origin::EnvStateDir, Vec::new());
    }
    let mut skipped = Vec::new();
    let mut usable = |spool: PathBuf, origin: Origin| match safe(&spool) {
        Ok(()) => Some(spool),
        Err(why) => {
            skipped.push(format!(
                "not using {} ({}): {why}",
                spool.display(),
                origin.as_str()
            ));
            None
        }
    };
    let var_lib = Path::new(VAR_LIB);
    if writable(var_lib)
        && let Some(d) = usable(var_lib.join("spool"), Origin::VarLib)
    {
        return chosen(d, Origin::VarLib, skipped);
    }
    if let Some(f) = sqlite_file
        && let Some(name) = f.file_name()
    {
        let dir = match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut spool = name.to_os_string();
        spool.push(".spool");
        if writable(dir)
            && let Some(d) = usable(dir.join(spool), Origin::BesideSqlite)
        {
            return chosen(d, Origin::BesideSqlite, skipped);
        }
    }
    chosen(
        PathBuf::from(format!("/var/tmp/siptraced-{uid}/spool")),
        Origin::Fallback,
        skipped,
    )
}

/// What lstat (or, for a parent, stat) says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub kind: Kind,
    pub uid: u32,
    /// Permission bits with set-id and sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Why a directory is not safe for the spool; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeDir {
    #[error(
        "is a symbolic link, which siptraced does not follow in its spool; set spool_dir \
         to the directory it points to"
    )]
    Symlink,
    #[error("exists and is not a directory; remove it or set another spool_dir")]
    NotADirectory,
    #[error(
        "belongs to uid {owner}, not to uid {ours} that siptraced runs as, so another user \
         could read or replace the spooled rows; remove it (siptraced creates it, mode 0700), \
         or if it is yours: chown {ours} it and chmod 0700 it"
    )]
    Owner { owner: u32, ours: u32 },
    #[error(
        "is writable by its {who} (mode {mode:04o}), so another user could replace the \
         spooled rows; chmod 0700 it"
    )]
    Writable { mode: u32, who: &'static str },
    #[error(
        "is in {parent}, which uid {owner} owns with mode {mode:04o}: another user could \
         rename the spool away and put their own in its place; use a spool_dir whose \
         parent only root or uid {ours} can write"
    )]
    Parent {
        parent: PathBuf,
        owner: u32,
        mode: u32,
        ours: u32,
    },
}

/// An existing spool directory is safe when it is a real directory owned by
/// `euid` that neither its group nor others may write.
pub(crate) fn judge_dir(f: &Facts, euid: u32) -> Result<(), UnsafeDir> {
    match f.kind {
        Kind::Symlink => return Err(UnsafeDir::Symlink),
        Kind::Other => return Err(UnsafeDir::NotADirectory),
        Kind::Dir => {}
    }
    if f.uid != euid {
        return Err(UnsafeDir::Owner {
            owner: f.uid,
            ours: euid,
        });
    }
    let who = match (f.mode & 0o020 != 0, f.mode & 0o002 != 0) {
        (_, true) => "others",
        (true, false) => "group",
        (false, false) => return Ok(()),
    };
    Err(UnsafeDir::Writable { mode: f.mode, who })
}

/// The directory holding the spool directory is safe when only root or
/// `euid` own it and, if others may write it, it is sticky (/tmp, /var/tmp:
/// nobody else may rename our entry).
pub(crate) fn judge_parent(parent: &Path, f: &Facts, euid: u32) -> Result<(), UnsafeDir> {
    let owner_ok = f.uid == 0 || f.uid == euid;
    let sticky = f.mode & 0o1000 != 0;
    let shared = f.mode & 0o022 != 0;
    if owner_ok && (!shared || sticky) {
        return Ok(());
    }
    Err(UnsafeDir::Parent {
        parent: parent.to_path_buf(),
        owner: f.uid,
        mode: f.mode,
        ours: euid,
    })
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
            let c = choose(spool, state, env, file, 7, w, |_| Ok(()));
            assert_eq!(
                (c.dir, c.origin),
                (PathBuf::from(want), origin),
                "{spool:?} {state:?} {env:?} {file:?}"
            );
            assert!(c.skipped.is_empty());
        }
    }

    #[test]
    fn unsafe_automatic_candidates_are_skipped_with_the_reason() {
        let db = Some(Path::new("/srv/trace/t.db"));
        let refuse = |bad: &'static [&'static str]| {
            move |p: &Path| {
                if bad.iter().any(|b| p == Path::new(b)) {
                    Err("owned by someone else".to_string())
                } else {
                    Ok(())
                }
            }
        };
        let c = choose(
            None,
            None,
            None,
            db,
            7,
            |_| true,
            refuse(&["/var/lib/siptraced/spool"]),
        );
        assert_eq!(c.dir, PathBuf::from("/srv/trace/t.db.spool"));
        assert_eq!(c.origin, Origin::BesideSqlite);
        assert_eq!(
            c.skipped,
            ["not using /var/lib/siptraced/spool (default state directory): owned by someone else"]
        );
        let both = refuse(&["/var/lib/siptraced/spool", "/srv/trace/t.db.spool"]);
        let c = choose(None, None, None, db, 7, |_| true, both);
        assert_eq!(c.origin, Origin::Fallback);
        assert_eq!(c.skipped.len(), 2);
        // Configured directories are never skipped: opening them says why.
        let all = refuse(&["/s", "/st/spool", "/e/spool"]);
        assert_eq!(
            choose(Some("/s"), None, None, db, 7, |_| true, all).dir,
            PathBuf::from("/s")
        );
        assert_eq!(
            choose(None, Some("/st"), None, db, 7, |_| true, all).origin,
            Origin::StateDir
        );
        assert_eq!(
            choose(None, None, Some("/e"), db, 7, |_| true, all).origin,
            Origin::EnvStateDir
        );
    }

    #[test]
    fn a_spool_directory_must_be_ours_alone() {
        let dir = |uid, mode| Facts {
            kind: Kind::Dir,
            uid,
            mode,
        };
        assert_eq!(judge_dir(&dir(7, 0o700), 7), Ok(()));
        assert_eq!(judge_dir(&dir(7, 0o755), 7), Ok(()));
        assert_eq!(
            judge_dir(&dir(65534, 0o700), 0),
            Err(UnsafeDir::Owner {
                owner: 65534,
                ours: 0
            })
        );
        assert_eq!(
            judge_dir(&dir(7, 0o777), 7),
            Err(UnsafeDir::Writable {
                mode: 0o777,
                who: "others"
            })
        );
        assert_eq!(
            judge_dir(&dir(7, 0o770), 7),
            Err(UnsafeDir::Writable {
                mode: 0o770,
                who: "group"
            })
        );
        let link = Facts {
            kind: Kind::Symlink,
            uid: 7,
            mode: 0o777,
        };
        assert_eq!(judge_dir(&link, 7), Err(UnsafeDir::Symlink));
        let file = Facts {
            kind: Kind::Other,
            uid: 7,
            mode: 0o600,
        };
        assert_eq!(judge_dir(&file, 7), Err(UnsafeDir::NotADirectory));

        let p = Path::new("/x");
        assert!(judge_parent(p, &dir(0, 0o755), 7).is_ok());
        assert!(judge_parent(p, &dir(7, 0o700), 7).is_ok());
        assert!(judge_parent(p, &dir(0, 0o1777), 7).is_ok());
        assert!(judge_parent(p, &dir(0, 0o777), 7).is_err());
        assert!(judge_parent(p, &dir(8, 0o755), 7).is_err());
        assert!(judge_parent(p, &dir(8, 0o1777), 7).is_err());
        let msg = judge_dir(&dir(65534, 0o700), 0).unwrap_err().to_string();
        assert!(
            msg.contains("belongs to uid 65534") && msg.contains("chmod 0700"),
            "{msg}"
        );
    }
}
