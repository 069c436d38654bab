//! Files ramsecrets reads back for itself (the hand-off state, the proxy
//! token) are trusted only when nobody else could have planted them: opened
//! without following a symlink, of the expected type, owned by ramsecrets'
//! euid (or root, where allowed), not writable by group or others, on
//! tmpfs/ramfs where asked, and read no further than a size cap.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::secret::SecretBytes;

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether a `statfs` filesystem type is tmpfs or ramfs.
pub fn memory_fs(fs_type: i64) -> bool {
    fs_type == TMPFS_MAGIC || fs_type == RAMFS_MAGIC
}

/// Whether `fd` is on tmpfs or ramfs.
pub fn in_memory(fd: impl AsFd) -> std::io::Result<bool> {
    Ok(memory_fs(rustix::fs::fstatfs(fd)?.f_type as i64))
}

/// Why a file or directory is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// It is a symlink.
    #[error("it is a symlink, which is never followed")]
    Symlink,
    /// It is not of the expected type.
    #[error("it is not a {0}")]
    Type(&'static str),
    /// Someone else owns it.
    #[error("it is owned by uid {owner}, not by ramsecrets' uid {euid}{}", if *.root_allowed { " or root" } else { "" })]
    Owner {
        /// Its owner.
        owner: u32,
        /// ramsecrets' effective uid.
        euid: u32,
        /// Whether root would have been accepted.
        root_allowed: bool,
    },
    /// Group or others may write it.
    #[error("it is writable by group or others (mode {0:04o})")]
    Writable(u32),
    /// It is on a disk.
    #[error("it is not on tmpfs or ramfs")]
    NotMemory,
    /// It is larger than the cap.
    #[error("it is larger than {0} bytes")]
    TooLarge(u64),
    /// It could not be opened or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Refused {
    /// Whether the file simply does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, Refused::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What makes a file or directory trusted.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// root may own it too (a file an operator provisioned).
    pub root_may_own: bool,
    /// It must be on tmpfs or ramfs.
    pub memory_only: bool,
}

fn open(dir: impl AsFd, path: &Path, flags: OFlags) -> Result<OwnedFd, Refused> {
    let flags = flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    rustix::fs::openat(dir, path, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => Refused::Symlink,
        Errno::NOTDIR if flags.contains(OFlags::DIRECTORY) => Refused::Type("directory"),
        e => Refused::Io(e.into()),
    })
}

/// Checks type, owner, mode and filesystem of an opened `fd`; returns its size.
fn check(fd: &OwnedFd, kind: FileType, rules: Rules) -> Result<u64, Refused> {
    let stat = rustix::fs::fstat(fd).map_err(std::io::Error::from)?;
    if FileType::from_raw_mode(stat.st_mode) != kind {
        return Err(Refused::Type(match kind {
            FileType::Directory => "directory",
            _ => "regular file",
        }));
    }
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid && !(rules.root_may_own && stat.st_uid == 0) {
        return Err(Refused::Owner {
            owner: stat.st_uid,
            euid,
            root_allowed: rules.root_may_own,
        });
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(Refused::Writable(stat.st_mode & 0o7777));
    }
    if rules.memory_only && !in_memory(fd)? {
        return Err(Refused::NotMemory);
    }
    Ok(u64::try_from(stat.st_size).unwrap_or(0))
}

/// Opens the directory `path` (relative to `base`) and checks it.
pub fn open_dir(base: impl AsFd, path: &Path, rules: Rules) -> Result<OwnedFd, Refused> {
    let fd = open(base, path, OFlags::DIRECTORY)?;
    check(&fd, FileType::Directory, rules)?;
    Ok(fd)
}

/// Reads the regular file `path` (relative to `base`) after checking it,
/// never more than `max` bytes.
pub fn read(base: impl AsFd, path: &Path, rules: Rules, max: u64) -> Result<SecretBytes, Refused> {
    let fd = open(base, path, OFlags::empty())?;
    let size = check(&fd, FileType::RegularFile, rules)?;
    if size > max {
        return Err(Refused::TooLarge(max));
    }
    // Sized up front, so that the buffer does not move (and leave copies) as it fills.
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(size as usize + 1));
    File::from(fd).take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Refused::TooLarge(max));
    }
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const RULES: Rules = Rules {
        root_may_own: false,
        memory_only: false,
    };

    #[test]
    fn refuses_symlinks_wrong_types_writable_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = rustix::fs::CWD;
        let p = dir.path().join("f");
        std::fs::write(&p, "token").unwrap();
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o640)).unwrap();
        assert_eq!(read(cwd, &p, RULES, 16).unwrap().expose(), b"token");
        assert!(matches!(read(cwd, &p, RULES, 4), Err(Refused::TooLarge(4))));
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o666)).unwrap();
        assert!(matches!(
            read(cwd, &p, RULES, 16),
            Err(Refused::Writable(0o666))
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(read(cwd, &link, RULES, 16), Err(Refused::Symlink)));
        assert!(matches!(
            read(cwd, dir.path(), RULES, 16),
            Err(Refused::Type(_))
        ));
        assert!(matches!(open_dir(cwd, &p, RULES), Err(Refused::Type(_))));
        assert!(read(cwd, &dir.path().join("none"), RULES, 16)
            .unwrap_err()
            .is_missing());
    }

    #[test]
    fn refuses_a_file_another_uid_owns() {
        assert!(
            rustix::process::geteuid().is_root(),
            "giving a file to another uid needs root: run the tests as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "token").unwrap();
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o400)).unwrap();
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let refused = read(rustix::fs::CWD, &p, RULES, 16).unwrap_err();
        assert!(
            matches!(
                refused,
                Refused::Owner {
                    owner: 65534,
                    euid: 0,
                    root_allowed: false
                }
            ),
            "{refused:?}"
        );
    }
}
