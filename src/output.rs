//! The output directory writer. It refuses a directory that is not tmpfs or
//! ramfs, works only relative to the directory it opened, and replaces files
//! atomically: a temporary file made with `O_CREAT|O_EXCL|O_NOFOLLOW`, written,
//! `fchmod`/`fchown`, then `renameat` over the old name. A symlink planted at a
//! target name is replaced, never followed. [`OutputDir::write_all`] is the
//! one write path: every file that differs from disk is staged as a
//! `Staged` temporary first, and only then are they renamed into place, one
//! atomic rename per file: a failure while staging leaves every file as it
//! was, and a rename that fails after others did says which files are new
//! and which are still as before ([`Error::Partial`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::config::Output;
use crate::exit::{Exit, ExitCode};
use crate::render::format::Rendered;
use crate::secret::SecretBytes;

/// Suffix of temporary files, so that leftovers of a crash can be found.
const TMP_SUFFIX: &str = ".ramsecrets-tmp";

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory could not be opened.
    #[error("cannot open output dir {path}: {source}")]
    OpenDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory does not exist.
    #[error("output dir {path} does not exist: create it, or mount a memory volume there")]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The directory is on a disk.
    #[error("output dir {path} is not tmpfs or ramfs (filesystem type {fs_type:#x}): secrets would land on a disk; mount a memory volume there, or set output.allow_disk: true for development")]
    NotMemory {
        /// The directory.
        path: PathBuf,
        /// `statfs` type.
        fs_type: i64,
    },
    /// Files were renamed into place before one could not be: the files of
    /// this write are not all new, nor all as before.
    #[error(
        "cannot write {file} in {dir}: {source}; already new: {}; still as before: {}",
        new.join(", "),
        old.join(", ")
    )]
    Partial {
        /// Output directory.
        dir: PathBuf,
        /// The file that could not be renamed into place.
        file: String,
        /// The files renamed into place before it.
        new: Vec<String>,
        /// It and the files not renamed after it.
        old: Vec<String>,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {file} in {dir}: {source}")]
    Write {
        /// Output directory.
        dir: PathBuf,
        /// The file, relative to it.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        Exit::CantCreate
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An opened, checked output directory.
#[derive(Debug)]
pub struct OutputDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    owner: Option<(u32, u32)>,
    on_disk: bool,
}

/// A written temporary file waiting to be renamed into place; dropping it
/// without [`OutputDir::commit`] removes it.
#[derive(Debug)]
struct Staged {
    parent: Arc<OwnedFd>,
    tmp: String,
    name: String,
    file: String,
    done: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&*self.parent, self.tmp.as_str(), AtFlags::empty());
        }
    }
}

/// What [`OutputDir::write_all`] changed: file by file, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written(Vec<bool>);

impl Written {
    /// How many files changed.
    pub fn count(&self) -> usize {
        self.0.iter().filter(|&&c| c).count()
    }

    /// Whether any file changed.
    pub fn any(&self) -> bool {
        self.0.contains(&true)
    }

    /// Whether any file of each set changed, for files given as consecutive
    /// sets (a secret's) of these sizes.
    pub fn per_set(&self, sizes: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut files = self.0.iter();
        sizes
            .into_iter()
            .map(|n| files.by_ref().take(n).fold(false, |a, &b| a | b))
            .collect()
    }
}

impl OutputDir {
    /// Opens `output.dir`, checks it is in memory (unless `allow_disk`) and
    /// removes temporaries a crash left behind.
    pub fn open(output: &Output) -> Result<Self> {
        let (fd, on_disk) = Self::probe(output)?;
        if on_disk {
            tracing::warn!(dir = %output.dir.display(), "output dir is not tmpfs or ramfs; allow_disk is set, so secrets are written to a disk");
        }
        let dir = Self {
            fd: Arc::new(fd),
            path: output.dir.clone(),
            owner: output.owner,
            on_disk,
        };
        dir.clean_temporaries();
        Ok(dir)
    }

    /// Checks what [`OutputDir::open`] checks, and changes nothing.
    pub fn check(output: &Output) -> Result<()> {
        Self::probe(output).map(drop)
    }

    /// Opens the directory and tells whether it is on a disk (allowed only with `allow_disk`).
    fn probe(output: &Output) -> Result<(OwnedFd, bool)> {
        let path = &output.dir;
        let open_err = |source: Errno| match source {
            Errno::NOENT => Error::Missing { path: path.clone() },
            _ => Error::OpenDir {
                path: path.clone(),
                source: source.into(),
            },
        };
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(open_err)?;
        let fs_type = rustix::fs::fstatfs(&fd).map_err(open_err)?.f_type as i64;
        let on_disk = !crate::os::trust::memory_fs(fs_type);
        if on_disk && !output.allow_disk {
            return Err(Error::NotMemory {
                path: path.clone(),
                fs_type,
            });
        }
        Ok((fd, on_disk))
    }

    /// A directory its caller opened and checked (the hand-off state's), to
    /// write into the same way.
    pub fn opened(fd: OwnedFd, path: PathBuf) -> Self {
        let on_disk = !crate::os::trust::in_memory(&fd).unwrap_or(false);
        Self {
            fd: Arc::new(fd),
            path,
            owner: None,
            on_disk,
        }
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The opened directory.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Whether the directory `other` is this one or lies anywhere under it,
    /// found by walking up its `..` entries (so no path or symlink can hide it).
    pub fn encloses(&self, other: &OwnedFd) -> std::io::Result<bool> {
        let id = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|s| (s.st_dev, s.st_ino));
        let me = id(&self.fd)?;
        let mut cur = rustix::fs::openat(
            other,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        loop {
            let here = id(&cur)?;
            if here == me {
                return Ok(true);
            }
            let up = rustix::fs::openat(
                &cur,
                "..",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            if id(&up)? == here {
                return Ok(false);
            }
            cur = up;
        }
    }

    fn clean_temporaries(&self) {
        let Ok(entries) = rustix::fs::Dir::read_from(&*self.fd) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy();
            if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                tracing::info!(file = %name, "removing a temporary file left by an earlier run");
                let _ = rustix::fs::unlinkat(&*self.fd, entry.file_name(), AtFlags::empty());
            }
        }
    }

    fn err(&self, file: &str, e: impl Into<std::io::Error>) -> Error {
        Error::Write {
            dir: self.path.clone(),
            file: file.to_owned(),
            source: e.into(),
        }
    }

    /// Opens (creating as needed) the directory that holds `file`, one
    /// component at a time and never through a symlink.
    fn parent_of<'f>(&self, file: &'f str) -> Result<(Arc<OwnedFd>, &'f str)> {
        let Some((dirs, name)) = file.rsplit_once('/') else {
            return Ok((self.fd.clone(), file));
        };
        let mut cur = self.fd.clone();
        for comp in dirs.split('/') {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&*cur, comp, flags, Mode::empty()) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&*cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.err(file, e)),
                    }
                    let dir = rustix::fs::openat(&*cur, comp, flags, Mode::empty());
                    // A directory we made belongs to the files' owner too.
                    if let (Ok(d), Some((uid, gid))) = (&dir, self.owner) {
                        rustix::fs::fchown(
                            d,
                            Some(rustix::fs::Uid::from_raw(uid)),
                            Some(rustix::fs::Gid::from_raw(gid)),
                        )
                        .map_err(|e| self.err(file, e))?;
                    }
                    dir
                }
                other => other,
            }
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => self.err(
                    file,
                    std::io::Error::other(format!(
                        "`{comp}` is a symlink or not a directory; refusing to follow it"
                    )),
                ),
                e => self.err(file, e),
            })?;
            cur = Arc::new(next);
        }
        Ok((cur, name))
    }

    /// Writes `bytes` to a new temporary file beside `file`, with its mode and owner set.
    fn stage(&self, file: &str, bytes: &SecretBytes, mode: u32) -> Result<Staged> {
        let (parent, name) = self.parent_of(file)?;
        let tmp = format!(".{name}.{:016x}{TMP_SUFFIX}", rand::random::<u64>());
        let fd = rustix::fs::openat(
            &*parent,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.err(file, e))?;
        let staged = Staged {
            parent,
            tmp,
            name: name.to_owned(),
            file: file.to_owned(),
            done: false,
        };
        let mut f = File::from(fd);
        f.write_all(bytes.expose()).map_err(|e| self.err(file, e))?;
        if let Some((uid, gid)) = self.owner {
            rustix::fs::fchown(
                f.as_fd(),
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| self.err(file, e))?;
        }
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode)).map_err(|e| self.err(file, e))?;
        if self.on_disk {
            f.sync_all().map_err(|e| self.err(file, e))?;
        }
        Ok(staged)
    }

    /// Whether `file` is a regular file (not a symlink) that already holds
    /// `bytes` with `mode`. Its size is checked first, and no more than
    /// `bytes.len() + 1` bytes of it are read, whatever its size.
    fn holds(&self, file: &str, bytes: &SecretBytes, mode: u32) -> bool {
        let Ok((parent, name)) = self.parent_of(file) else {
            return false;
        };
        let Ok(fd) = rustix::fs::openat(
            &*parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) else {
            return false;
        };
        let Ok(stat) = rustix::fs::fstat(&fd) else {
            return false;
        };
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile
            || stat.st_mode & 0o7777 != mode
            || u64::try_from(stat.st_size) != Ok(bytes.len() as u64)
        {
            return false;
        }
        let mut now = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        let read = File::from(fd)
            .take(bytes.len() as u64 + 1)
            .read_to_end(&mut now);
        read.is_ok() && now.as_slice() == bytes.expose()
    }

    /// Stages `bytes` for `file` only when the file does not already hold
    /// them with this mode; `None` when it does.
    fn stage_if_changed(
        &self,
        file: &str,
        bytes: &SecretBytes,
        mode: u32,
    ) -> Result<Option<Staged>> {
        if self.holds(file, bytes, mode) {
            return Ok(None);
        }
        self.stage(file, bytes, mode).map(Some)
    }

    /// Writes `files` together: stages every file that does not already hold
    /// its bytes and mode, then renames them all into place, and reports
    /// which changed. A file that cannot be staged drops what was staged, so
    /// nothing is written; a rename that fails after others is an
    /// [`Error::Partial`] naming the new files and the old.
    pub fn write_all<'a>(&self, files: impl IntoIterator<Item = &'a Rendered>) -> Result<Written> {
        let mut staged = Vec::new();
        let mut changed = Vec::new();
        for r in files {
            let s = self.stage_if_changed(&r.file, &r.bytes, r.mode)?;
            changed.push(s.is_some());
            staged.extend(s);
        }
        let mut new: Vec<String> = Vec::new();
        let mut staged = staged.into_iter();
        while let Some(s) = staged.next() {
            let file = s.file.clone();
            match self.commit(s) {
                Ok(()) => new.push(file),
                Err(Error::Write { dir, file, source }) if !new.is_empty() => {
                    // What is left staged is dropped: its temporaries go.
                    let old = std::iter::once(file.clone())
                        .chain(staged.map(|s| s.file.clone()))
                        .collect();
                    return Err(Error::Partial {
                        dir,
                        file,
                        new,
                        old,
                        source,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Written(changed))
    }

    /// Removes `file` (for `wipe_on_exit`); a missing file is fine.
    pub fn remove(&self, file: &str) -> Result<()> {
        let (parent, name) = self.parent_of(file)?;
        match rustix::fs::unlinkat(&*parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err(file, e)),
        }
    }

    /// Removes the directories above `file` that are left empty, deepest
    /// first, up to the output directory (for `wipe_on_exit`); a directory
    /// that still holds something, or is a symlink, stays.
    pub fn prune(&self, file: &str) {
        let Some((dirs, _)) = file.rsplit_once('/') else {
            return;
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut chain = vec![self.fd.clone()];
        let comps: Vec<&str> = dirs.split('/').collect();
        for comp in &comps[..comps.len() - 1] {
            let Some(cur) = chain.last() else { return };
            match rustix::fs::openat(&**cur, *comp, flags, Mode::empty()) {
                Ok(fd) => chain.push(Arc::new(fd)),
                Err(_) => return,
            }
        }
        for (parent, comp) in chain.iter().zip(&comps).rev() {
            if rustix::fs::unlinkat(&**parent, *comp, AtFlags::REMOVEDIR).is_err() {
                return;
            }
        }
    }

    /// Renames a staged file over its target name.
    fn commit(&self, mut staged: Staged) -> Result<()> {
        rustix::fs::renameat(
            &*staged.parent,
            staged.tmp.as_str(),
            &*staged.parent,
            staged.name.as_str(),
        )
        .map_err(|e| self.err(&staged.file, e))?;
        staged.done = true;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
