//! Real in-memory output directories: a tmpfs mount when root, else a fresh
//! directory under /dev/shm.

use std::path::Path;
use std::process::Command;

use super::{is_root, scratch};

/// An in-memory output directory: a real tmpfs mount of `size` when root,
/// else a fresh directory under /dev/shm (also tmpfs).
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// A tmpfs of `size` (as `mount -o size=` takes it, e.g. `16m`).
    pub fn new(size: &str) -> Tmpfs {
        if is_root() {
            let dir = scratch();
            let ok = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir.path())
                .status()
                .expect("cannot run mount");
            assert!(ok.success(), "mount -t tmpfs failed");
            Tmpfs { dir, mounted: true }
        } else {
            Tmpfs {
                dir: tempfile::tempdir_in("/dev/shm").expect("no /dev/shm"),
                mounted: false,
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Reads a file in it.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// `$var` after a POSIX shell sources `file` (an `env`-format file).
    pub fn source_var(&self, file: &str, var: &str) -> String {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                ". {}/{file} && printf %s \"${var}\"",
                self.path().display()
            ))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sourcing {file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Names of the entries in it, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}
