//! The `output:` section, as written and validated: the directory secrets
//! are written to, its defaults, and the hand-off state directory beside it;
//! that a file name stays inside it, and that no file written there is the
//! directory of another.

use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::ModeText;
use super::Validator;

/// The output directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Directory to write to. It must already exist and be tmpfs or ramfs (checked with
    /// `statfs`); otherwise ramsecrets exits 73 before it contacts any backend.
    pub dir: PathBuf,
    /// Default file mode, an octal string from "0000" to "0777" (default "0400").
    pub mode: Option<ModeText>,
    /// Numeric `uid:gid` to own every file written (needs `CAP_CHOWN`).
    pub owner: Option<String>,
    /// Accept a directory that is not in memory, with a warning, and fsync each file
    /// (development only).
    #[serde(default)]
    pub allow_disk: bool,
    /// Where `init` leaves its token, leases and certificates for the sidecar (a 0700
    /// directory it creates, a 0400 file): its own volume, mounted only in ramsecrets'
    /// containers. It must be on tmpfs (unless `allow_disk`), owned by ramsecrets' uid and
    /// not writable by others (else 73), and not under `dir` (else 78). Absent: no
    /// hand-off (the sidecar fetches afresh).
    pub state_dir: Option<PathBuf>,
    /// Remove the written files when the sidecar stops, and the subdirectories they
    /// needed once those are empty.
    #[serde(default)]
    pub wipe_on_exit: bool,
}

/// The output directory.
#[derive(Debug)]
pub struct Output {
    /// Directory path.
    pub dir: PathBuf,
    /// Default mode.
    pub mode: u32,
    /// Owner `(uid, gid)`.
    pub owner: Option<(u32, u32)>,
    /// Allow a disk-backed directory.
    pub allow_disk: bool,
    /// Hand-off state of `init` for the sidecar; `None`: no hand-off.
    pub state_dir: Option<PathBuf>,
    /// Remove written files when the sidecar stops.
    pub wipe_on_exit: bool,
}

/// Whether `inner` is `outer` or lies under it: by the paths as written
/// (`.` and `..` resolved), and by the real paths when both exist.
fn within(inner: &Path, outer: &Path) -> bool {
    fn lexical(p: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }
    if lexical(inner).starts_with(lexical(outer)) {
        return true;
    }
    matches!(
        (inner.canonicalize(), outer.canonicalize()),
        (Ok(i), Ok(o)) if i.starts_with(&o)
    )
}

impl Validator<'_> {
    pub(super) fn output(&mut self, o: RawOutput) -> Option<Output> {
        let mode = self.mode("output.mode", o.mode.as_deref(), 0o400);
        let owner = match o.owner.as_deref() {
            None => Some(None),
            Some(s) => match s.split_once(':').map(|(u, g)| (u.parse(), g.parse())) {
                Some((Ok(u), Ok(g))) => Some(Some((u, g))),
                _ => {
                    self.problem("output.owner", format!("`{s}` is not numeric `uid:gid`"));
                    None
                }
            },
        };
        if o.dir.as_os_str().is_empty() {
            self.problem("output.dir", "must not be empty");
        }
        if owner == Some(Some((u32::MAX, u32::MAX))) {
            self.problem("output.owner", "-1 is not an owner");
        }
        let dir = self.path("output.dir", o.dir);
        let state_dir = o.state_dir.map(|p| self.path("output.state_dir", p));
        if let Some(state) = &state_dir {
            if within(state, &dir) {
                self.problem(
                    "output.state_dir",
                    format!(
                        "{} is inside output.dir {}, which the app reads: the token and leases kept there would be the app's to take; give output.state_dir its own volume",
                        state.display(),
                        dir.display()
                    ),
                );
            }
        }
        Some(Output {
            dir,
            mode: mode?,
            owner: owner?,
            allow_disk: o.allow_disk,
            state_dir,
            wipe_on_exit: o.wipe_on_exit,
        })
    }
}

impl Validator<'_> {
    /// A file one secret or template writes may not be a directory another
    /// one's file needs (`x` and `x/y`): the write would fail at run time.
    pub(super) fn no_file_over_a_directory(
        &mut self,
        secrets: &[super::Secret],
        templates: &[super::Template],
    ) {
        let written: Vec<(String, String)> = secrets
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.files()
                    .into_iter()
                    .map(move |f| (f, format!("secrets[{i}].file")))
            })
            .chain(
                templates
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.file.clone(), format!("templates[{i}].file"))),
            )
            .collect();
        let files: std::collections::HashMap<&str, &str> = written
            .iter()
            .map(|(f, at)| (f.as_str(), at.as_str()))
            .collect();
        for (file, at) in &written {
            for dir in std::path::Path::new(file).ancestors().skip(1) {
                if let Some(other) = dir.to_str().and_then(|d| files.get(d)) {
                    self.problem(
                        at.clone(),
                        format!(
                            "file `{file}` needs `{}` as a directory, but {other} writes it as a file",
                            dir.display()
                        ),
                    );
                }
            }
        }
    }
}

/// A file name relative to the output directory: no absolute path, no `..`,
/// no `.` segments, no NUL, no empty segments.
pub(super) fn check_relative(file: &str) -> std::result::Result<(), &'static str> {
    if file.is_empty() {
        return Err("must not be empty");
    }
    if file.contains('\0') {
        return Err("must not contain NUL");
    }
    let p = Path::new(file);
    if p.is_absolute() {
        return Err("must be relative to output.dir, not absolute");
    }
    if file.ends_with('/') || file.contains("//") {
        return Err("must name a file, with no empty segment");
    }
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("must not contain `..`"),
            _ => return Err("must not contain `.` segments"),
        }
    }
    if file.split('/').any(|seg| seg == ".") {
        return Err("must not contain `.` segments");
    }
    Ok(())
}
