//! The spool directory: the thin file layer over [`super::record`].
//!
//! ```text
//! <dir>/lock                  flock'ed for the life of the process (one owner)
//! <dir>/spool.id              "id=<32 hex>\nrun=<n>\n": marker key, restart count
//! <dir>/seg-<16 hex>.spool    segments, oldest = lowest number; header + records
//! ```
//! Rows are appended to the newest segment and replayed from the oldest; a
//! segment is deleted once every record in it has been accounted for in the
//! database. Sequence numbers are `run << 40 | n`: `run` is bumped and
//! written (fsync'ed) at every start, so numbers never go back, even after
//! the spool was emptied and deleted — the marker in the database relies on
//! that (ARCHITECTURE.md, "Spool").
//!
//! At open every segment is scanned: a torn or corrupt tail is reported and
//! cut off (truncated), damage followed by good records is reported and
//! skipped, a file that is not a segment is renamed `*.bad` and left alone.
//!
//! The directory must be the daemon's alone (`location::judge_dir`): it is
//! created 0700, and an existing one owned by another user, writable by
//! others or a symbolic link is refused. Files in it are opened with
//! O_NOFOLLOW, so a link planted there is never followed. fsync failures
//! are reported and retried at the next append ([`Durability`] is the seam
//! tests use to make them fail); they never stop the next segment from
//! being created.
//!
//! Depends on std, nix/libc (flock, chown, open flags), log, `record` and
//! `location`. Never reads the clock; the caller decides when to call.

use super::SpoolError;
use super::location::{self, Facts, Kind};
use super::record::{self, HEADER_LEN, HeaderState, SEGMENT_MAGIC};
use crate::config::SpoolFullPolicy;
use crate::db::Row;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Sequence numbers per run: 2^40 rows (35 years at 1000 rows/s); a run
/// that uses them up starts the next run. 2^23 runs keep numbers below
/// 2^63, the range of the marker's signed BIGINT.
const RUN_SHIFT: u32 = 40;
const MAX_RUN: u64 = (1 << 23) - 1;

/// Where and how big.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// Cap on the bytes of all segment files together.
    pub max_bytes: u64,
    /// fsync after each append (and the directory after creating a file).
    pub fsync: bool,
    /// Owner to give the directory and its files (the daemon drops to it).
    pub owner: (Option<Uid>, Option<Gid>),
}

/// What [`Spool::open`] found, for the start-up log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Records left by an earlier run, waiting for replay.
    pub pending: u64,
    pub segments: usize,
    /// One line per problem found and what was done about it.
    pub problems: Vec<String>,
}

/// How [`Spool::append`] treats rows beyond the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitMode {
    /// Skip each row that does not fit; later (smaller) rows may still fit.
    SkipMisfits,
    /// Stop at the first row that does not fit.
    StopAtFirstMisfit,
}

impl From<SpoolFullPolicy> for FitMode {
    fn from(p: SpoolFullPolicy) -> Self {
        match p {
            SpoolFullPolicy::Drop => FitMode::SkipMisfits,
            SpoolFullPolicy::Stop => FitMode::StopAtFirstMisfit,
        }
    }
}

/// Records read by [`Spool::peek`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Decoded rows with their sequence numbers, oldest first.
    pub rows: Vec<(u64, Row)>,
    /// Records covered, undecodable ones included: what to
    /// [`Spool::consume`] once the rows are in the database.
    pub records: usize,
    pub undecodable: usize,
}

/// What [`Spool::append`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub written: u64,
    /// Rows refused by the cap.
    pub refused: u64,
}

struct Segment {
    no: u64,
    path: PathBuf,
    /// File length.
    bytes: u64,
    /// Good records not yet consumed.
    pending: u64,
    /// Highest sequence number in it.
    last_seq: u64,
    /// Damaged spans known (reported at open), so that replay reports only
    /// new ones.
    known_damage: usize,
}

/// The oldest segment, read into memory for replay.
struct Head {
    no: u64,
    data: Vec<u8>,
    frames: Vec<record::Frame>,
    /// Frames already consumed.
    next: usize,
}

/// The two durability calls, behind a seam so that tests can make them fail
/// (a full or failing disk) without one.
pub(crate) trait Durability: Send {
    /// Make the directory's entries (a new segment's name) durable.
    fn sync_dir(&mut self, dir: &Path) -> std::io::Result<()>;
    /// Make a file's appended data durable.
    fn sync_data(&mut self, file: &File) -> std::io::Result<()>;
}

/// fsync(2) and fdatasync(2).
struct Fsync;

impl Durability for Fsync {
    fn sync_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)?
            .sync_all()
    }
    fn sync_data(&mut self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}

/// Options for every file in the spool: a symbolic link is never followed
/// (ELOOP instead), so nobody can make the daemon write elsewhere.
fn no_follow() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW);
    o
}

/// A file read whole, without following a link.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    no_follow().read(true).open(path)?.read_to_end(&mut data)?;
    Ok(data)
}

fn facts(m: &fs::Metadata) -> Facts {
    let t = m.file_type();
    let kind = if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    };
    Facts {
        kind,
        uid: m.uid(),
        mode: m.mode() & 0o7777,
    }
}

/// Whether `dir` may hold the spool of a daemon running as `euid`: absent,
/// or a directory it alone owns and may write; and the directory holding it
/// (when there is one yet) lets nobody else replace it.
pub(crate) fn check_dir(dir: &Path, euid: u32) -> Result<(), SpoolError> {
    let unsafe_dir = |why| SpoolError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    };
    match fs::symlink_metadata(dir) {
        Ok(m) => location::judge_dir(&facts(&m), euid).map_err(unsafe_dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir, "cannot inspect the spool directory")(e)),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(m) = fs::metadata(parent) {
        location::judge_parent(parent, &facts(&m), euid).map_err(unsafe_dir)?;
    }
    Ok(())
}

/// The newest segment, open for appending.
struct Active {
    no: u64,
    file: File,
    records: u64,
}

pub struct Spool {
    dir: PathBuf,
    /// Held for the life of the process (dropping it releases the lock);
    /// holds our pid, for the message another instance prints.
    lock: Flock<File>,
    id: String,
    run: u64,
    /// Next number within the run.
    next: u64,
    segments: VecDeque<Segment>,
    active: Option<Active>,
    head: Option<Head>,
    next_no: u64,
    bytes: u64,
    pending: u64,
    max_bytes: u64,
    seg_max: u64,
    fsync: bool,
    owner: (Option<Uid>, Option<Gid>),
    sync: Box<dyn Durability>,
    /// A segment was created and the directory not yet synced since.
    dir_unsynced: bool,
    /// Closed segments whose last data sync failed: synced again at the
    /// next append, forgotten once they are replayed and deleted.
    unsynced: Vec<(u64, File)>,
}

fn io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn segment_name(no: u64) -> String {
    format!("seg-{no:016x}.spool")
}

fn segment_no(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".spool")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `id=…` and `run=…` from spool.id; None when unreadable.
fn parse_id_file(text: &str) -> Option<(String, u64)> {
    let mut id = None;
    let mut run = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("id", v))
                if (16..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                id = Some(v.to_string())
            }
            Some(("run", v)) => run = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some((id?, run?))
}

/// 16 random bytes as hex: the marker key of a new spool.
fn new_id() -> String {
    let mut b = [0u8; 16];
    let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_err() {
        // No /dev/urandom (a chroot): pid and address-space noise are
        // enough to tell two spools apart on one database.
        let salt = std::collections::hash_map::RandomState::new();
        use std::hash::{BuildHasher, Hasher};
        let mut h = salt.build_hasher();
        h.write_u32(std::process::id());
        b[..8].copy_from_slice(&h.finish().to_le_bytes());
        let second = salt.hash_one(b);
        b[8..].copy_from_slice(&second.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Spool {
    /// Lock and load the spool directory (created if missing), bump the run
    /// number, scan the segments and repair what a crash left.
    pub fn open(opts: &SpoolOptions) -> Result<(Spool, OpenReport), SpoolError> {
        Self::open_with(opts, Box::new(Fsync))
    }

    /// [`Spool::open`] with the durability calls given.
    pub(crate) fn open_with(
        opts: &SpoolOptions,
        sync: Box<dyn Durability>,
    ) -> Result<(Spool, OpenReport), SpoolError> {
        let dir = opts.dir.clone();
        let euid = nix::unistd::geteuid().as_raw();
        check_dir(&dir, euid)?;
        if fs::symlink_metadata(&dir).is_err() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir, "cannot create the spool directory"))?;
            // Whoever made it first (a race with another user) is found here.
            check_dir(&dir, euid)?;
        }
        let lock_path = dir.join("lock");
        let lock_file = no_follow()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "cannot open the lock file"))?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut f, _)) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                return Err(SpoolError::Locked {
                    dir,
                    holder: holder.trim().to_string(),
                });
            }
        };

        let mut report = OpenReport::default();
        let id_path = dir.join("spool.id");
        let (id, mut run) = match read_no_follow(&id_path) {
            Ok(text) => match parse_id_file(&String::from_utf8_lossy(&text)) {
                Some(v) => v,
                None => {
                    report.problems.push(format!(
                        "{} is unreadable; starting a new spool identity (rows \
                         already replayed from it may be written twice)",
                        id_path.display()
                    ));
                    (new_id(), 0)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (new_id(), 0),
            Err(e) => return Err(io_err(&id_path, "cannot read")(e)),
        };

        let seg_max = (opts.max_bytes / 16).clamp(64 << 10, 8 << 20);
        let mut spool = Spool {
            dir: dir.clone(),
            lock,
            id,
            run: 0,
            next: 1,
            segments: VecDeque::new(),
            active: None,
            head: None,
            next_no: 1,
            bytes: 0,
            pending: 0,
            max_bytes: opts.max_bytes,
            seg_max,
            fsync: opts.fsync,
            owner: opts.owner,
            sync,
            dir_unsynced: false,
            unsynced: Vec::new(),
        };
        spool.write_pid();
        spool.load_segments(&mut report)?;
        // Numbers must rise above everything on disk, even if spool.id was
        // restored from an old copy.
        if let Some(last) = spool.segments.back() {
            run = run.max(last.last_seq >> RUN_SHIFT);
        }
        spool.run = run;
        spool.new_run()?;
        spool.chown_all();
        report.pending = spool.pending;
        report.segments = spool.segments.len();
        Ok((spool, report))
    }

    fn load_segments(&mut self, report: &mut OpenReport) -> Result<(), SpoolError> {
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(io_err(&self.dir, "cannot list the spool"))?;
        for e in entries {
            let e = e.map_err(io_err(&self.dir, "cannot list the spool"))?;
            if let Some(no) = e.file_name().to_str().and_then(segment_no) {
                found.push((no, e.path()));
            }
        }
        found.sort();
        let mut after_seq = 0;
        for (no, path) in found {
            self.next_no = self.next_no.max(no + 1);
            let data = read_no_follow(&path).map_err(io_err(&path, "cannot read"))?;
            match record::header_state(&data) {
                HeaderState::Good => {}
                HeaderState::Torn => {
                    report.problems.push(format!(
                        "{}: segment created but never written (torn header); removed",
                        path.display()
                    ));
                    fs::remove_file(&path).map_err(io_err(&path, "cannot remove"))?;
                    continue;
                }
                HeaderState::Bad => {
                    let bad = path.with_extension("bad");
                    report.problems.push(format!(
                        "{}: not a siptraced spool segment (or another version); \
                         renamed to {} and not replayed",
                        path.display(),
                        bad.display()
                    ));
                    fs::rename(&path, &bad).map_err(io_err(&path, "cannot rename"))?;
                    continue;
                }
            }
            let scan = record::scan(&data, HEADER_LEN, after_seq);
            for d in &scan.skipped {
                report.problems.push(format!(
                    "{}: {} bytes at offset {} hold no good record ({}); skipped",
                    path.display(),
                    d.span.len(),
                    d.span.start,
                    d.flaw.as_str()
                ));
            }
            let mut len = data.len() as u64;
            if let Some(t) = &scan.tail {
                let keep = scan.good_end(HEADER_LEN) as u64;
                report.problems.push(format!(
                    "{}: {} at offset {}: cut the last {} bytes (a write torn by \
                     a crash, or damage); the records before it are kept",
                    path.display(),
                    t.flaw.as_str(),
                    t.span.start,
                    t.span.len()
                ));
                let f = no_follow()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path, "cannot open to cut the torn tail"))?;
                f.set_len(keep)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err(&path, "cannot cut the torn tail"))?;
                len = keep;
            }
            if scan.frames.is_empty() {
                fs::remove_file(&path).map_err(io_err(&path, "cannot remove"))?;
                continue;
            }
            let last_seq = scan.frames.last().map_or(0, |f| f.seq);
            after_seq = last_seq;
            self.pending += scan.frames.len() as u64;
            self.bytes += len;
            self.segments.push_back(Segment {
                no,
                path,
                bytes: len,
                pending: scan.frames.len() as u64,
                last_seq,
                known_damage: scan.skipped.len(),
            });
        }
        Ok(())
    }

    /// Start the next run: persist `run + 1` before any number of it is used.
    fn new_run(&mut self) -> Result<(), SpoolError> {
        let run = self.run + 1;
        if run > MAX_RUN {
            return Err(SpoolError::Exhausted {
                dir: self.dir.clone(),
            });
        }
        let path = self.dir.join("spool.id");
        let tmp = self.dir.join("spool.id.tmp");
        let text = format!("id={}\nrun={run}\n", self.id);
        let mut write = || -> std::io::Result<()> {
            let mut f = no_follow()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            self.sync.sync_dir(&self.dir)
        };
        write().map_err(io_err(&path, "cannot write"))?;
        self.run = run;
        self.next = 1;
        Ok(())
    }

    fn chown_all(&self) {
        let (uid, gid) = self.owner;
        if uid.is_none() && gid.is_none() {
            return;
        }
        let mut paths = vec![
            self.dir.clone(),
            self.dir.join("lock"),
            self.dir.join("spool.id"),
        ];
        paths.extend(self.segments.iter().map(|s| s.path.clone()));
        for p in paths {
            if let Err(e) = nix::unistd::chown(&p, uid, gid) {
                log::warn!("spool: cannot give {} to the run user: {e}", p.display());
            }
        }
    }

    /// Write our pid into the lock file (again after daemonising).
    pub(crate) fn write_pid(&mut self) {
        let _ = self.lock.set_len(0);
        let _ = self.lock.seek(SeekFrom::Start(0));
        let _ = writeln!(&mut *self.lock, "{}", std::process::id());
    }

    /// The marker key: this spool's identity in `siptraced_spool_marker`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records waiting for replay.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Bytes of the segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `n` consecutive fresh sequence numbers; the first is returned.
    pub(crate) fn alloc_seqs(&mut self, n: u64) -> Result<u64, SpoolError> {
        if self.next + n >= 1 << RUN_SHIFT {
            self.new_run()?;
        }
        let first = (self.run << RUN_SHIFT) | self.next;
        self.next += n;
        Ok(first)
    }

    /// Append rows (with their sequence numbers, rising) within the cap;
    /// fsync once at the end when configured. Rows beyond the cap are
    /// refused per `mode`, never written in part.
    pub fn append(&mut self, items: &[(u64, &Row)], mode: FitMode) -> Result<Appended, SpoolError> {
        let mut out = Appended::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut stopped = false;
        for &(seq, row) in items {
            if stopped {
                out.refused += 1;
                continue;
            }
            let len = record::encoded_len(row) as u64;
            let roll = match &self.active {
                None => true,
                Some(a) => {
                    let seg = self.segments.back().map_or(0, |s| s.bytes);
                    a.records > 0 && seg + buf.len() as u64 + len > self.seg_max
                }
            };
            let cost = len + if roll { HEADER_LEN as u64 } else { 0 };
            if self.bytes + buf.len() as u64 + cost > self.max_bytes {
                out.refused += 1;
                stopped = mode == FitMode::StopAtFirstMisfit;
                continue;
            }
            if roll {
                self.write_active(&mut buf)?;
                self.roll()?;
            }
            record::encode(seq, row, &mut buf);
            if let (Some(a), Some(s)) = (self.active.as_mut(), self.segments.back_mut()) {
                a.records += 1;
                s.pending += 1;
                s.last_seq = seq;
            }
            self.pending += 1;
            out.written += 1;
        }
        self.write_active(&mut buf)?;
        if self.fsync && out.written > 0 {
            // The rows are in the file either way (and counted pending); an
            // error says they may not survive a power loss yet.
            self.make_durable()?;
        }
        Ok(out)
    }

    /// fsync what is not durable yet: segments closed while their sync
    /// failed, the directory after a segment was created, the active
    /// segment. Every step is tried; the first failure is returned, and
    /// what failed is tried again at the next append.
    fn make_durable(&mut self) -> Result<(), SpoolError> {
        let mut first: Option<SpoolError> = None;
        let live: Vec<u64> = self.segments.iter().map(|s| s.no).collect();
        let (dir, sync) = (&self.dir, &mut self.sync);
        self.unsynced.retain(|(no, f)| {
            if !live.contains(no) {
                return false;
            }
            match sync.sync_data(f) {
                Ok(()) => false,
                Err(e) => {
                    let path = dir.join(segment_name(*no));
                    first.get_or_insert(io_err(&path, "cannot fsync")(e));
                    true
                }
            }
        });
        if self.dir_unsynced {
            match self.sync.sync_dir(&self.dir) {
                Ok(()) => self.dir_unsynced = false,
                Err(e) => {
                    first.get_or_insert(io_err(&self.dir, "cannot fsync the spool directory")(e));
                }
            }
        }
        if let Some(a) = &self.active
            && let Err(e) = self.sync.sync_data(&a.file)
        {
            let path = self.dir.join(segment_name(a.no));
            first.get_or_insert(io_err(&path, "cannot fsync")(e));
        }
        first.map_or(Ok(()), Err)
    }

    /// Write `buf` at the end of the active segment. On failure the file is
    /// cut back to where it was, so a half-written record never stays.
    fn write_active(&mut self, buf: &mut Vec<u8>) -> Result<(), SpoolError> {
        if buf.is_empty() {
            return Ok(());
        }
        let (Some(a), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            buf.clear();
            return Ok(());
        };
        if let Err(e) = a.file.write_all(buf) {
            let _ = a.file.set_len(seg.bytes);
            let _ = a.file.seek(SeekFrom::End(0));
            // The records counted for this buffer are not on disk.
            let lost = buf_records(buf);
            seg.pending = seg.pending.saturating_sub(lost);
            a.records = a.records.saturating_sub(lost);
            self.pending = self.pending.saturating_sub(lost);
            buf.clear();
            // Start afresh next time rather than trust this file's end.
            self.active = None;
            return Err(SpoolError::Io {
                path: seg.path.clone(),
                what: "cannot append",
                source: e,
            });
        }
        seg.bytes += buf.len() as u64;
        self.bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Close the active segment (synced) and start a new one. Its number is
    /// used up whatever happens, so that a failure here never makes the
    /// next segment collide with a file left behind.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if let Some(a) = self.active.take()
            && self.fsync
            && self.sync.sync_data(&a.file).is_err()
        {
            // Reported and retried by make_durable at the end of the append.
            self.unsynced.push((a.no, a.file));
        }
        let no = self.next_no;
        self.next_no += 1;
        let path = self.dir.join(segment_name(no));
        let mut file = no_follow()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path, "cannot create a segment"))?;
        if let Err(e) = file.write_all(SEGMENT_MAGIC) {
            let _ = fs::remove_file(&path);
            return Err(io_err(&path, "cannot write a segment header")(e));
        }
        // The new name must survive a power loss with its records: the
        // directory is synced with them, at the end of the append.
        self.dir_unsynced |= self.fsync;
        self.bytes += HEADER_LEN as u64;
        self.segments.push_back(Segment {
            no,
            path,
            bytes: HEADER_LEN as u64,
            pending: 0,
            last_seq: 0,
            known_damage: 0,
        });
        self.active = Some(Active {
            no,
            file,
            records: 0,
        });
        Ok(())
    }

    /// Up to `max_rows` of the oldest records (and about `max_bytes`, at
    /// least one), without consuming them.
    pub(crate) fn peek(&mut self, max_rows: usize, max_bytes: usize) -> Result<Batch, SpoolError> {
        let mut out = Batch::default();
        let mut bytes = 0;
        self.load_head()?;
        let Some(head) = self.head.as_ref() else {
            return Ok(out);
        };
        for f in &head.frames[head.next..] {
            if out.records >= max_rows || (bytes >= max_bytes && out.records > 0) {
                break;
            }
            let payload = &head.data[f.payload.clone()];
            bytes += payload.len();
            out.records += 1;
            match record::decode(payload) {
                Ok(r) => out.rows.push(r),
                Err(flaw) => {
                    // Checksum good, content not: written by a broken build.
                    out.undecodable += 1;
                    log::warn!(
                        "spool: {} record {} at offset {}: {}; skipped",
                        self.dir.join(segment_name(head.no)).display(),
                        f.seq,
                        f.span.start,
                        flaw.as_str()
                    );
                }
            }
        }
        Ok(out)
    }

    /// Account for the first `n` records of [`Spool::peek`]'s batch: they
    /// are in the database (or were undecodable). Deletes emptied segments.
    pub fn consume(&mut self, mut n: usize) -> Result<(), SpoolError> {
        while n > 0 {
            let Some(head) = self.head.as_mut() else {
                return Ok(());
            };
            let take = n.min(head.frames.len() - head.next);
            head.next += take;
            n -= take;
            let done = head.next == head.frames.len();
            let no = head.no;
            if let Some(seg) = self.segments.front_mut() {
                seg.pending = seg.pending.saturating_sub(take as u64);
            }
            self.pending = self.pending.saturating_sub(take as u64);
            if !done {
                continue;
            }
            // Everything read so far is consumed. Records appended to it
            // since it was read are still pending: keep it for them.
            let is_active = self.active.as_ref().is_some_and(|a| a.no == no);
            let seg_pending = self.segments.front().map_or(0, |s| s.pending);
            if seg_pending > 0 {
                return Ok(());
            }
            self.head = None;
            if let Some(seg) = self.segments.pop_front() {
                if is_active {
                    self.active = None;
                }
                self.bytes = self.bytes.saturating_sub(seg.bytes);
                if let Err(e) = fs::remove_file(&seg.path) {
                    // Left behind, it would be replayed again at the next
                    // start: harmless with the marker, noisy without.
                    log::warn!("spool: cannot remove {}: {e}", seg.path.display());
                }
            }
            if n > 0 {
                self.load_head()?;
            }
        }
        Ok(())
    }

    /// Make sure the oldest segment is in memory with every record written
    /// to it so far.
    fn load_head(&mut self) -> Result<(), SpoolError> {
        loop {
            let Some(seg) = self.segments.front() else {
                self.head = None;
                return Ok(());
            };
            let seg_no = seg.no;
            let stale = match &self.head {
                Some(h) if h.no == seg.no => (h.data.len() as u64) < seg.bytes,
                _ => true,
            };
            if stale {
                self.read_head()?;
            }
            let Some(h) = &self.head else {
                return Ok(());
            };
            if h.next < h.frames.len() {
                return Ok(());
            }
            let is_active = self.is_active(seg_no);
            if is_active {
                // Read up to its end and all consumed: nothing is pending in
                // it, whatever the count said (keeps replay from spinning).
                if let Some(seg) = self.segments.front_mut() {
                    self.pending -= seg.pending.min(self.pending);
                    seg.pending = 0;
                }
                return Ok(());
            }
            // Nothing readable left in it (all damaged): drop it.
            self.head = None;
            if let Some(seg) = self.segments.pop_front() {
                self.pending = self.pending.saturating_sub(seg.pending);
                self.bytes = self.bytes.saturating_sub(seg.bytes);
                let _ = fs::remove_file(&seg.path);
            }
        }
    }

    /// Read the oldest segment, or what was appended to it since it was
    /// last read; keeps the consumed position.
    fn read_head(&mut self) -> Result<(), SpoolError> {
        let Some(seg) = self.segments.front() else {
            return Ok(());
        };
        let (no, path, known) = (seg.no, seg.path.clone(), seg.known_damage);
        let mut head = match self.head.take() {
            Some(h) if h.no == no => h,
            _ => Head {
                no,
                data: Vec::new(),
                frames: Vec::new(),
                next: 0,
            },
        };
        let from = head.data.len();
        let mut f = no_follow()
            .read(true)
            .open(&path)
            .map_err(io_err(&path, "cannot read"))?;
        f.seek(SeekFrom::Start(from as u64))
            .and_then(|_| f.read_to_end(&mut head.data))
            .map_err(io_err(&path, "cannot read"))?;
        let start = if from == 0 { HEADER_LEN } else { from };
        let after = head.frames.last().map_or(0, |f| f.seq);
        let scan = record::scan(&head.data, start.min(head.data.len()), after);
        // The active segment's end is ours and whole; a tail there is new
        // damage only if the segment is closed.
        let damage = scan.skipped.len() + usize::from(scan.tail.is_some());
        if damage > 0 && (from > 0 || damage > known) {
            log::warn!(
                "spool: {}: {damage} damaged span(s) found during replay; skipped",
                path.display()
            );
        }
        head.frames.extend(scan.frames);
        let found = (head.frames.len() - head.next) as u64;
        if let Some(s) = self.segments.front_mut() {
            // What is pending in it is what can be read from it.
            self.pending = self.pending - s.pending.min(self.pending) + found;
            s.pending = found;
            s.known_damage = s.known_damage.max(damage);
        }
        self.head = Some(head);
        Ok(())
    }

    fn is_active(&self, no: u64) -> bool {
        self.active.as_ref().is_some_and(|a| a.no == no)
    }
}

/// Records in an encoded buffer (to undo counts after a failed write).
fn buf_records(buf: &[u8]) -> u64 {
    record::scan(buf, 0, 0).frames.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn tmp() -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "st-spool-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        Dir(p)
    }
    fn opts(d: &Dir, max_bytes: u64) -> SpoolOptions {
        SpoolOptions {
            dir: d.0.join("spool"),
            max_bytes,
            fsync: false,
            owner: (None, None),
        }
    }
    fn row(n: usize, size: usize) -> Row {
        Row {
            table: None,
            msg: vec![b'a' + (n % 26) as u8; size].into(),
            callid: format!("c{n}").into(),
            method: "INVITE".into(),
            status: "".into(),
            fromip: "udp:127.0.0.1:1".into(),
            toip: "udp:127.0.0.1:2".into(),
            time_sec: n as i64,
            time_us: 0,
            time_stamp: "2024-01-01 00:00:00".into(),
            direction: "in",
            fromtag: "".into(),
            totag: "".into(),
            traced_user: String::new(),
        }
    }
    fn append(s: &mut Spool, range: std::ops::Range<usize>, size: usize) -> Appended {
        let rows: Vec<Row> = range.map(|n| row(n, size)).collect();
        let first = s.alloc_seqs(rows.len() as u64).unwrap();
        let items: Vec<(u64, &Row)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (first + i as u64, r))
            .collect();
        s.append(&items, FitMode::SkipMisfits).unwrap()
    }
    fn drain(s: &mut Spool, per: usize) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let b = s.peek(per, usize::MAX).unwrap();
            if b.records == 0 {
                return out;
            }
            out.extend(b.rows.iter().map(|(_, r)| r.callid.to_string()));
            s.consume(b.records).unwrap();
        }
    }
    fn names(n: std::ops::Range<usize>) -> Vec<String> {
        n.map(|i| format!("c{i}")).collect()
    }
    fn segments(d: &Dir) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(d.0.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "spool"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rows_survive_a_restart_and_numbers_keep_rising() {
        let d = tmp();
        let (mut s, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert_eq!((rep.pending, rep.problems.len()), (0, 0));
        let first_run = s.alloc_seqs(1).unwrap();
        assert_eq!(append(&mut s, 0..10, 100).written, 10);
        let id = s.id().to_string();
        drop(s);
        let (mut s, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert_eq!((rep.pending, rep.segments), (10, 1));
        assert_eq!(s.id(), id);
        assert!(s.alloc_seqs(1).unwrap() > first_run + (1 << 39));
        assert_eq!(drain(&mut s, 3), names(0..10));
        assert_eq!((s.pending(), s.bytes()), (0, 0));
        assert!(segments(&d).is_empty());
        // Emptied and deleted: numbers still rise over the restart.
        let before = s.alloc_seqs(1).unwrap();
        drop(s);
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert!(s.alloc_seqs(1).unwrap() > before);
    }

    #[test]
    fn replay_follows_appends_across_segments_in_order() {
        let d = tmp();
        // 1 MiB cap: 64 KiB segments, ~60 rows of 1 KiB each.
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        append(&mut s, 0..150, 1000);
        assert!(segments(&d).len() >= 3, "{:?}", segments(&d));
        // A batch stops at the end of the oldest segment.
        let b = s.peek(100, usize::MAX).unwrap();
        assert!((40..100).contains(&b.records), "{}", b.records);
        s.consume(40).unwrap();
        // Rows added during replay come after the older ones.
        append(&mut s, 150..160, 1000);
        assert_eq!(drain(&mut s, 7), names(40..160));
        assert_eq!((s.pending(), s.bytes()), (0, 0));
        assert!(segments(&d).is_empty());
    }

    #[test]
    fn the_active_segment_is_read_as_it_grows() {
        let d = tmp();
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        append(&mut s, 0..3, 10);
        let b = s.peek(10, usize::MAX).unwrap();
        assert_eq!(b.records, 3);
        s.consume(2).unwrap();
        append(&mut s, 3..5, 10);
        assert_eq!(drain(&mut s, 10), names(2..5));
        // Emptied while active: the next append starts a new file.
        append(&mut s, 5..6, 10);
        assert_eq!(drain(&mut s, 10), names(5..6));
    }

    #[test]
    fn records_appended_after_a_peek_are_never_lost_with_their_segment() {
        let d = tmp();
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        append(&mut s, 0..3, 1000);
        let b = s.peek(10, usize::MAX).unwrap();
        assert_eq!(b.records, 3);
        // More rows go into the same segment and fill it past its size, so
        // the next rows start a new one; then the peeked batch is consumed.
        append(&mut s, 3..200, 1000);
        assert!(segments(&d).len() >= 3);
        s.consume(b.records).unwrap();
        assert_eq!(drain(&mut s, 50), names(3..200));
    }

    #[test]
    fn the_cap_is_never_exceeded_and_refusals_are_counted() {
        let d = tmp();
        let cap = 1 << 20;
        let (mut s, _) = Spool::open(&opts(&d, cap)).unwrap();
        let mut written = 0;
        let mut refused = 0;
        for k in 0..40 {
            let a = append(&mut s, k * 10..k * 10 + 10, 5000);
            written += a.written;
            refused += a.refused;
            assert!(s.bytes() <= cap);
        }
        assert_eq!(written + refused, 400);
        assert!(refused > 0 && written > 150, "{written} {refused}");
        let on_disk: u64 = segments(&d)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, s.bytes());
        assert_eq!(s.pending(), written);
        // Small rows still fit in the room left (policy drop: newest rows
        // that do not fit are dropped, others kept).
        let room = cap - s.bytes();
        let small = append(&mut s, 1000..1001, 10);
        assert_eq!(
            small.written,
            u64::from(room as usize >= record::encoded_len(&row(0, 10)))
        );
        // Stop mode refuses everything after the first misfit.
        let rows: Vec<Row> = vec![row(1, 100_000), row(2, 10)];
        let first = s.alloc_seqs(2).unwrap();
        let a = s
            .append(
                &[(first, &rows[0]), (first + 1, &rows[1])],
                FitMode::StopAtFirstMisfit,
            )
            .unwrap();
        assert_eq!((a.written, a.refused), (0, 2));
    }

    #[test]
    fn a_torn_tail_is_cut_at_open_and_the_good_records_kept() {
        let d = tmp();
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        append(&mut s, 0..5, 200);
        drop(s);
        let seg = segments(&d).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // Half of the last record gone, as after a crash mid-write.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        let (mut s, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert_eq!(rep.pending, 4);
        assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
        assert!(
            rep.problems[0].contains("record cut short"),
            "{:?}",
            rep.problems
        );
        let good = fs::metadata(&seg).unwrap().len();
        assert!(good < len - 100, "the torn bytes are cut off the file");
        assert_eq!(drain(&mut s, 10), names(0..4));
        drop(s);
        // Cut once: nothing to report the next time.
        let (_, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    }

    #[test]
    fn damage_and_strangers_are_reported_and_never_replayed() {
        let d = tmp();
        let (mut s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        append(&mut s, 0..5, 200);
        drop(s);
        let seg = segments(&d).pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        // Corrupt the second record's message and add garbage at the end.
        let at = HEADER_LEN + record::encoded_len(&row(0, 200)) + 100;
        data[at] ^= 0xff;
        data.extend_from_slice(b"\xfb\xd5garbage that is no record");
        fs::write(&seg, &data).unwrap();
        // A file with a segment name but not a segment.
        fs::write(d.0.join("spool").join(segment_name(99)), b"hello").unwrap();
        // A segment created but never written (crash right after create).
        fs::write(d.0.join("spool").join(segment_name(100)), b"").unwrap();
        let (mut s, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert_eq!(rep.pending, 4);
        let all = rep.problems.join("\n");
        assert_eq!(rep.problems.len(), 4, "{all}");
        assert!(
            all.contains("checksum mismatch") && all.contains("skipped"),
            "{all}"
        );
        assert!(all.contains("cut the last"), "{all}");
        assert!(all.contains("renamed"), "{all}");
        assert!(all.contains("torn header"), "{all}");
        assert_eq!(drain(&mut s, 10), ["c0", "c2", "c3", "c4"]);
        assert!(d.0.join("spool").join("seg-0000000000000063.bad").exists());
    }

    fn try_append(
        s: &mut Spool,
        range: std::ops::Range<usize>,
        size: usize,
    ) -> Result<Appended, SpoolError> {
        let rows: Vec<Row> = range.map(|n| row(n, size)).collect();
        let first = s.alloc_seqs(rows.len() as u64).unwrap();
        let items: Vec<(u64, &Row)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (first + i as u64, r))
            .collect();
        s.append(&items, FitMode::SkipMisfits)
    }

    /// Fails the next `dir`/`data` calls, as many as the counters say.
    struct Failing {
        dir: Arc<AtomicU32>,
        data: Arc<AtomicU32>,
    }
    impl Durability for Failing {
        fn sync_dir(&mut self, dir: &Path) -> std::io::Result<()> {
            if self.dir.load(Ordering::SeqCst) > 0 {
                self.dir.fetch_sub(1, Ordering::SeqCst);
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            Fsync.sync_dir(dir)
        }
        fn sync_data(&mut self, file: &File) -> std::io::Result<()> {
            if self.data.load(Ordering::SeqCst) > 0 {
                self.data.fetch_sub(1, Ordering::SeqCst);
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            file.sync_data()
        }
    }

    #[test]
    fn fsync_failures_are_reported_retried_and_never_wedge_new_segments() {
        let d = tmp();
        let dir_fails = Arc::new(AtomicU32::new(0));
        let data_fails = Arc::new(AtomicU32::new(0));
        let sync = Failing {
            dir: dir_fails.clone(),
            data: data_fails.clone(),
        };
        let o = SpoolOptions {
            fsync: true,
            ..opts(&d, 1 << 20)
        };
        let (mut s, _) = Spool::open_with(&o, Box::new(sync)).unwrap();
        // The first segment's directory sync fails: reported, rows kept.
        dir_fails.store(1, Ordering::SeqCst);
        let e = try_append(&mut s, 0..1, 100).unwrap_err();
        assert!(
            e.to_string().contains("cannot fsync the spool directory"),
            "{e}"
        );
        assert_eq!(s.pending(), 1);
        // Retried at the next append, which succeeds.
        assert_eq!(try_append(&mut s, 1..2, 100).unwrap().written, 1);
        assert_eq!(dir_fails.load(Ordering::SeqCst), 0);
        // A failed data sync: reported, then fine again.
        data_fails.store(1, Ordering::SeqCst);
        assert!(try_append(&mut s, 2..3, 100).is_err());
        // Many more segments (64 KiB each) are created, each directory
        // sync failing once more and then retried.
        for n in 3..40 {
            dir_fails.store(u32::from(n % 3 == 0), Ordering::SeqCst);
            let _ = try_append(&mut s, n..n + 1, 20_000);
        }
        assert!(try_append(&mut s, 40..41, 100).is_ok());
        assert_eq!(s.pending(), 41);
        assert!(segments(&d).len() > 5, "{:?}", segments(&d));
        drop(s);
        let (mut s, rep) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert_eq!(drain(&mut s, 7), names(0..41));
    }

    #[test]
    fn a_directory_that_is_not_ours_alone_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        // World-writable.
        let d = tmp();
        fs::create_dir_all(d.0.join("spool")).unwrap();
        fs::set_permissions(d.0.join("spool"), fs::Permissions::from_mode(0o777)).unwrap();
        let e = Spool::open(&opts(&d, 1 << 20)).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("writable by its others (mode 0777)") && msg.contains("chmod 0700"),
            "{msg}"
        );
        assert!(
            msg.contains(&d.0.join("spool").display().to_string()),
            "{msg}"
        );
        // Group-writable too.
        fs::set_permissions(d.0.join("spool"), fs::Permissions::from_mode(0o770)).unwrap();
        assert!(matches!(
            Spool::open(&opts(&d, 1 << 20)),
            Err(SpoolError::Unsafe { .. })
        ));
        // 0700 again: fine.
        fs::set_permissions(d.0.join("spool"), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Spool::open(&opts(&d, 1 << 20)).is_ok());

        // A symbolic link as the directory.
        let l = tmp();
        fs::create_dir_all(&l.0).unwrap();
        std::os::unix::fs::symlink(d.0.join("spool"), l.0.join("spool")).unwrap();
        let msg = Spool::open(&opts(&l, 1 << 20))
            .err()
            .expect("refused")
            .to_string();
        assert!(msg.contains("is a symbolic link"), "{msg}");

        // A new directory is created 0700.
        let n = tmp();
        let (s, _) = Spool::open(&opts(&n, 1 << 20)).unwrap();
        let mode = fs::metadata(s.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            // chown needs root; the pure rule is tested in location.rs.
            eprintln!("skipped: needs root");
            return;
        }
        let d = tmp();
        fs::create_dir_all(d.0.join("spool")).unwrap();
        nix::unistd::chown(&d.0.join("spool"), Some(Uid::from_raw(65534)), None).unwrap();
        let msg = Spool::open(&opts(&d, 1 << 20))
            .err()
            .expect("refused")
            .to_string();
        assert!(msg.contains("belongs to uid 65534, not to uid 0"), "{msg}");
        // The parent owned by another user, writable by it: refused too.
        let p = tmp();
        fs::create_dir_all(&p.0).unwrap();
        nix::unistd::chown(&p.0, Some(Uid::from_raw(65534)), None).unwrap();
        let msg = Spool::open(&opts(&p, 1 << 20))
            .err()
            .expect("refused")
            .to_string();
        assert!(msg.contains("which uid 65534 owns"), "{msg}");
    }

    #[test]
    fn links_planted_in_the_spool_are_never_followed() {
        let d = tmp();
        drop(Spool::open(&opts(&d, 1 << 20)).unwrap());
        let spool = d.0.join("spool");
        let victim = d.0.join("victim");
        fs::write(&victim, b"keep").unwrap();
        for name in ["lock", "spool.id"] {
            let _ = fs::remove_file(spool.join(name));
            std::os::unix::fs::symlink(&victim, spool.join(name)).unwrap();
            let msg = Spool::open(&opts(&d, 1 << 20))
                .err()
                .expect("refused")
                .to_string();
            assert!(
                msg.contains(name) && msg.contains("never follows links"),
                "{msg}"
            );
            fs::remove_file(spool.join(name)).unwrap();
        }
        // spool.id.tmp: refused too, the link not followed.
        std::os::unix::fs::symlink(&victim, spool.join("spool.id.tmp")).unwrap();
        assert!(Spool::open(&opts(&d, 1 << 20)).is_err());
        fs::remove_file(spool.join("spool.id.tmp")).unwrap();
        // A segment name that is a link: not read through.
        std::os::unix::fs::symlink(&victim, spool.join(segment_name(9))).unwrap();
        assert!(Spool::open(&opts(&d, 1 << 20)).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn one_owner_at_a_time() {
        let d = tmp();
        let (_s, _) = Spool::open(&opts(&d, 1 << 20)).unwrap();
        match Spool::open(&opts(&d, 1 << 20)) {
            Err(SpoolError::Locked { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened twice"),
        }
    }
}
