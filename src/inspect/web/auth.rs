//! Who may read the pages of `siptrace serve`: the `--auth FILE` of
//! `user:hash` lines (bcrypt hashes, as `siptrace serve --hash-password`
//! prints), checked against HTTP Basic credentials.
//!
//! Pure apart from reading the file; depends on `bcrypt` and `base64`
//! only. Never logs or returns a password.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;

/// What is wrong with an `--auth` file or a `--hash-password` request.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read --auth file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: {why}; each line is USER:HASH as printed by \
         `siptrace serve --hash-password USER`"
    )]
    BadLine {
        path: PathBuf,
        line: usize,
        why: &'static str,
    },
    #[error("{0}: no user in it; add a line with `siptrace serve --hash-password USER >> FILE`")]
    NoUser(PathBuf),
    #[error("user name {0:?} must be non-empty, without ':' or spaces")]
    BadUser(String),
    #[error("the password is empty (give it on stdin's first line)")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The users of an `--auth` file, and the credentials already verified.
#[derive(Debug)]
pub struct Users {
    users: Vec<(String, String)>,
    /// bcrypt is slow on purpose, and browsers resend the credentials with
    /// every request: an `Authorization` value verified once is
    /// remembered (bounded) rather than costing ~0.25 s per image.
    verified: Mutex<HashSet<String>>,
}

const VERIFIED_MAX: usize = 256;

fn valid_user(u: &str) -> bool {
    !u.is_empty() && !u.contains([':', ' ', '\t'])
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text, path)
    }

    /// `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Users, AuthError> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| AuthError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                why,
            };
            let (u, h) = line.split_once(':').ok_or_else(|| bad("no ':'"))?;
            if !valid_user(u) {
                return Err(bad("bad user name"));
            }
            // Only bcrypt's modular-crypt forms: anything else (a plain
            // password pasted by mistake) must not become a valid login.
            if !(h.starts_with("$2b$") || h.starts_with("$2a$") || h.starts_with("$2y$"))
                || h.len() != 60
            {
                return Err(bad("the hash is not a bcrypt hash ($2b$…, 60 characters)"));
            }
            users.push((u.to_string(), h.to_string()));
        }
        if users.is_empty() {
            return Err(AuthError::NoUser(path.to_path_buf()));
        }
        Ok(Users {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header value names a user with the
    /// right password.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        if self.lock().contains(value) {
            return true;
        }
        let Some(b64) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, v)| v.trim())
        else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(raw) else {
            return false;
        };
        let Some((user, pw)) = pair.split_once(':') else {
            return false;
        };
        let ok = match self.users.iter().find(|(u, _)| u == user) {
            Some((_, hash)) => bcrypt::verify(pw, hash).unwrap_or(false),
            None => {
                // Same work as for a known user, so that timing does not
                // tell which names exist; the result is ignored.
                let _ = bcrypt::verify(pw, &self.users[0].1);
                false
            }
        };
        if ok {
            let mut v = self.lock();
            if v.len() >= VERIFIED_MAX {
                v.clear();
            }
            v.insert(value.to_string());
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic while holding it leaves a plain set behind: still usable.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One `--auth` line for `user` and `password`.
pub fn entry(user: &str, password: &str) -> Result<String, AuthError> {
    if !valid_user(user) {
        return Err(AuthError::BadUser(user.to_string()));
    }
    if password.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    let h =
        bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(format!("{user}:{h}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn entries_verify_and_files_are_checked() {
        // Cost 4 keeps the test fast; the file format is the same.
        let h = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!("# readers\n\nalice:{h}\n");
        let p = Path::new("users");
        let u = Users::parse(&text, p).unwrap();
        assert!(u.allows(Some(&basic("alice:s3cret"))));
        assert!(u.allows(Some(&basic("alice:s3cret"))), "cached");
        assert!(!u.allows(Some(&basic("alice:wrong"))));
        assert!(!u.allows(Some(&basic("bob:s3cret"))));
        assert!(!u.allows(Some("Bearer x")));
        assert!(!u.allows(None));
        assert!(matches!(
            Users::parse("alice:plaintext\n", p),
            Err(AuthError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            Users::parse("# none\n", p),
            Err(AuthError::NoUser(_))
        ));
        assert!(matches!(entry("a:b", "x"), Err(AuthError::BadUser(_))));
        assert!(matches!(entry("a", ""), Err(AuthError::EmptyPassword)));
    }
}
