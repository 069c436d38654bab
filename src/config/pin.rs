//! `--config-sha256`: the SHA-256 of the config text a process must run. The
//! injector passes the digest of the config a pod was admitted with, so a
//! config changed afterwards (e.g. its annotation overwritten) is refused at
//! start and at a reload, never run.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Pin {
        Pin(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Pin {
    /// Lowercase hex, as `sha256sum` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

impl FromStr for Pin {
    type Err = String;

    /// 64 hex digits (either case).
    fn from_str(s: &str) -> Result<Pin, String> {
        let bad = || format!("`{s}` is not a SHA-256 in hex (64 digits 0-9, a-f)");
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Pin(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_back_from_its_hex() {
        let pin = Pin::of(b"abc");
        let hex = pin.to_string();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex.parse::<Pin>(), Ok(pin));
        assert_eq!(hex.to_uppercase().parse::<Pin>(), Ok(pin));
        for bad in ["", "ba78", &format!("{hex}0"), &hex.replace('b', "g")] {
            assert!(bad.parse::<Pin>().is_err(), "{bad}");
        }
    }
}
