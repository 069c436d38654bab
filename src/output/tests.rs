//! The writer against a disk directory (allowed for tests): atomic
//! replacement, planted symlinks, unchanged files, all-or-none writes.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// The settings of an output directory at `path`.
pub(crate) fn output(path: &Path, allow_disk: bool) -> Output {
    Output {
        dir: path.to_owned(),
        mode: 0o400,
        owner: None,
        allow_disk,
        state_dir: None,
        wipe_on_exit: false,
    }
}

fn disk_dir() -> (tempfile::TempDir, OutputDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open(&output(tmp.path(), true)).unwrap();
    (tmp, dir)
}

fn put(dir: &OutputDir, file: &str, text: &str, mode: u32) -> Result<()> {
    let staged = dir.stage(file, &SecretBytes::copy_from(text), mode)?;
    dir.commit(staged)
}

#[test]
fn refuses_a_disk_directory() {
    let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    match OutputDir::open(&output(tmp.path(), false)) {
        Err(Error::NotMemory { .. }) => {}
        other => panic!("expected NotMemory, got {other:?}"),
    }
}

#[test]
fn writes_with_mode_and_replaces_atomically() {
    let (tmp, dir) = disk_dir();
    put(&dir, "a.txt", "one", 0o440).unwrap();
    put(&dir, "a.txt", "two", 0o400).unwrap();
    let p = tmp.path().join("a.txt");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o400
    );
    put(&dir, "sub/deeper/b.txt", "b", 0o400).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("sub/deeper/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
}

#[test]
fn a_planted_symlink_is_replaced_not_followed() {
    let (tmp, dir) = disk_dir();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "untouched").unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("db")).unwrap();
    put(&dir, "db", "secret", 0o400).unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path()).unwrap(),
        "untouched"
    );
    let meta = std::fs::symlink_metadata(tmp.path().join("db")).unwrap();
    assert!(meta.file_type().is_file());
    std::os::unix::fs::symlink(tmp.path().join("..").as_path(), tmp.path().join("up")).unwrap();
    let err = put(&dir, "up/x", "secret", 0o400).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
}

#[test]
fn unchanged_files_are_not_staged() {
    let (tmp, dir) = disk_dir();
    put(&dir, "a", "same", 0o400).unwrap();
    let same = SecretBytes::copy_from("same");
    assert!(dir.stage_if_changed("a", &same, 0o400).unwrap().is_none());
    assert!(dir.stage_if_changed("a", &same, 0o440).unwrap().is_some());
    assert!(dir
        .stage_if_changed("a", &SecretBytes::copy_from("new"), 0o400)
        .unwrap()
        .is_some());
    dir.remove("a").unwrap();
    dir.remove("a").unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

fn rendered(file: &str, text: &str) -> Rendered {
    Rendered {
        file: file.into(),
        bytes: SecretBytes::copy_from(text),
        mode: 0o400,
    }
}

#[test]
fn write_all_reports_what_changed() {
    let (tmp, dir) = disk_dir();
    put(&dir, "a", "same", 0o400).unwrap();
    let files = [rendered("a", "same"), rendered("sub/b", "new")];
    let wrote = dir.write_all(&files).unwrap();
    assert_eq!((wrote.count(), wrote.any()), (1, true));
    assert_eq!(wrote.per_set([1, 1]), [false, true]);
    assert_eq!(wrote.per_set([2]), [true]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("sub/b")).unwrap(),
        "new"
    );
    assert!(!dir.write_all(&files).unwrap().any());
}

#[test]
fn a_rename_that_fails_after_others_names_the_new_files_and_the_old() {
    let (tmp, dir) = disk_dir();
    for f in ["a", "b", "c"] {
        put(&dir, f, "old", 0o400).unwrap();
    }
    // A directory planted where `b` was: its rename fails after `a`'s.
    std::fs::remove_file(tmp.path().join("b")).unwrap();
    std::fs::create_dir(tmp.path().join("b")).unwrap();
    let files = [
        rendered("a", "new"),
        rendered("b", "new"),
        rendered("c", "new"),
    ];
    let err = dir.write_all(&files).unwrap_err();
    let Error::Partial { new, old, .. } = &err else {
        panic!("not partial: {err}");
    };
    assert_eq!(
        (new.as_slice(), old.as_slice()),
        (&["a".to_owned()][..], &["b".to_owned(), "c".to_owned()][..])
    );
    assert!(
        err.to_string()
            .contains("already new: a; still as before: b, c"),
        "{err}"
    );
    let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
    assert_eq!((read("a"), read("c")), ("new".to_owned(), "old".to_owned()));
    // No temporary is left behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 3);
}

#[test]
fn write_all_writes_nothing_when_one_file_cannot_be_staged() {
    let (tmp, dir) = disk_dir();
    std::os::unix::fs::symlink(tmp.path().join(".."), tmp.path().join("up")).unwrap();
    let files = [rendered("a", "one"), rendered("up/x", "two")];
    let err = dir.write_all(&files).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    // Only the planted link: no file, no temporary.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn a_huge_sparse_file_is_compared_by_size_and_replaced() {
    let (tmp, dir) = disk_dir();
    let f = std::fs::File::create(tmp.path().join("a")).unwrap();
    f.set_len(1 << 40).unwrap();
    std::fs::set_permissions(tmp.path().join("a"), PermissionsExt::from_mode(0o400)).unwrap();
    let v = SecretBytes::copy_from("v");
    let staged = dir.stage_if_changed("a", &v, 0o400).unwrap().unwrap();
    dir.commit(staged).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("a")).unwrap(), b"v");
    assert!(dir.stage_if_changed("a", &v, 0o400).unwrap().is_none());
}

#[test]
fn pruning_removes_only_directories_left_empty() {
    let (tmp, dir) = disk_dir();
    put(&dir, "a/b/one", "1", 0o400).unwrap();
    put(&dir, "a/two", "2", 0o400).unwrap();
    dir.remove("a/b/one").unwrap();
    dir.prune("a/b/one");
    assert!(!tmp.path().join("a/b").exists());
    assert!(tmp.path().join("a/two").exists());
    dir.remove("a/two").unwrap();
    dir.prune("a/two");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    dir.prune("top-level-file");
    assert!(tmp.path().exists());
}

#[test]
fn a_dropped_stage_leaves_nothing() {
    let (tmp, dir) = disk_dir();
    let staged = dir.stage("x", &SecretBytes::copy_from("v"), 0o400).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    drop(staged);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn leftover_temporaries_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".db.0123.ramsecrets-tmp"), "x").unwrap();
    std::fs::write(tmp.path().join("keep"), "x").unwrap();
    OutputDir::open(&output(tmp.path(), true)).unwrap();
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep")]);
}
