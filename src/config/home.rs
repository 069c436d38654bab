//! `~` in the paths of a config, as a shell expands it: `~` and `~/…` start
//! at the home directory (`$HOME`), so that a config can name the developer's
//! own files, such as the Vault CLI's `~/.vault-token`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `path` with a leading `~` replaced by `home`; other paths as they are.
pub(super) fn expand(path: &Path, home: Option<&OsStr>) -> Result<PathBuf, String> {
    let bytes = path.as_os_str().as_bytes();
    let rest = match bytes {
        [b'~'] => &[][..],
        [b'~', b'/', rest @ ..] => rest,
        [b'~', ..] => {
            return Err(format!(
                "`{}`: only `~/` is expanded (to $HOME); write another user's home in full",
                path.display()
            ))
        }
        _ => return Ok(path.to_owned()),
    };
    let home = home
        .map(Path::new)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| {
            format!(
                "`{}`: `~` stands for the home directory, but HOME is not set to an absolute path",
                path.display()
            )
        })?;
    Ok(home.join(OsStr::from_bytes(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_tilde_is_home() {
        let home = Some(OsStr::new("/home/dev"));
        let x = |p: &str| expand(Path::new(p), home);
        assert_eq!(
            x("~/.vault-token").unwrap(),
            Path::new("/home/dev/.vault-token")
        );
        assert_eq!(x("~").unwrap(), Path::new("/home/dev"));
        assert_eq!(x("/etc/~/x").unwrap(), Path::new("/etc/~/x"));
        assert_eq!(x("a/~").unwrap(), Path::new("a/~"));
        assert!(x("~alice/t").unwrap_err().contains("only `~/`"));
        let e = expand(Path::new("~/t"), None).unwrap_err();
        assert!(e.contains("HOME is not set"), "{e}");
        assert!(expand(Path::new("~/t"), Some(OsStr::new("rel"))).is_err());
    }
}
