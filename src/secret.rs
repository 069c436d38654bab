//! The one home of secret bytes: [`SecretBytes`] zeroizes on drop, prints as
//! `[redacted]`, has no `Display` or `Serialize`, and is read only through an
//! explicit [`SecretBytes::expose`] at a file, template or socket edge.
//! [`Fetched`] is what a source returns: the fields with their version and lease.

use std::fmt;
use std::time::{Duration, SystemTime};

use zeroize::{Zeroize, Zeroizing};

/// Secret bytes that are wiped from memory when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; no copy is left behind.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Moves a `String`'s buffer in without copying it.
    pub fn from_string(s: String) -> Self {
        Self::new(s.into_bytes())
    }

    /// Copies a borrowed string in; the caller is responsible for the original.
    pub fn copy_from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }

    /// The bytes themselves: call only where they go to a file, a template or a socket.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8 text, if they are.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Number of bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same bytes in a buffer of their size (the old one is wiped): for
    /// bytes built by writes ([`SecretBytes::extend_from_slice`] doubles its
    /// buffer) that are then kept, as rendered files are.
    pub fn fitted(self) -> Self {
        if self.0.capacity() == self.0.len() {
            return self;
        }
        Self::new(self.0.to_vec())
    }

    /// Appends bytes; the old buffer is wiped if the vector has to grow.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.0.capacity() - self.0.len() < bytes.len() {
            let mut bigger = Vec::with_capacity((self.0.len() + bytes.len()).max(64) * 2);
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            *self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::io::Write for SecretBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The named fields of one secret (`username`, `password`, …), in name order.
/// Names are not secret; values are. A sorted vector sized to its fields, not
/// a `BTreeMap`, whose first node takes 544 bytes for eleven entries however
/// few there are: the sidecar holds one per secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, SecretBytes)>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// Sets field `name`; returns the value it replaces.
    pub fn insert(&mut self, name: String, value: SecretBytes) -> Option<SecretBytes> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                // Grown by one: a secret has few fields, and the sidecar keeps them all.
                self.0.reserve_exact(1);
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&SecretBytes> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// Whether there is a field `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SecretBytes)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The names in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The values in name order.
    pub fn values(&self) -> impl Iterator<Item = &SecretBytes> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// For tests, as a map reads: `fields["user"]`.
#[cfg(test)]
impl std::ops::Index<&str> for Fields {
    type Output = SecretBytes;

    /// The value of field `name`; panics when there is none.
    fn index(&self, name: &str) -> &SecretBytes {
        self.get(name).expect("no field of this name")
    }
}

impl FromIterator<(String, SecretBytes)> for Fields {
    /// The last value of a name given twice wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, SecretBytes)>>(pairs: I) -> Self {
        let mut fields = Fields(pairs.into_iter().collect());
        // Stable: of equal names, the last given ends up last, and is kept.
        fields.0.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut kept: Vec<(String, SecretBytes)> = Vec::with_capacity(fields.0.len());
        for (k, v) in fields.0.drain(..) {
            match kept.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => kept.push((k, v)),
            }
        }
        kept.shrink_to_fit();
        Fields(kept)
    }
}

impl IntoIterator for Fields {
    type Item = (String, SecretBytes);
    type IntoIter = std::vec::IntoIter<(String, SecretBytes)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a SecretBytes);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, SecretBytes)>,
        fn(&'a (String, SecretBytes)) -> (&'a String, &'a SecretBytes),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// A lease on a dynamic secret, as Vault reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id (not a secret: it cannot be used without a token).
    pub id: String,
    /// How long the lease lasts from the time it was read.
    pub duration: Duration,
    /// Whether the lease can be extended.
    pub renewable: bool,
}

/// One fetch of one secret from a source.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The fields of the secret.
    pub fields: Fields,
    /// A backend version (KV v2 version, AWS VersionId), when the backend has one.
    pub version: Option<String>,
    /// The lease of a dynamic secret, when it has one.
    pub lease: Option<Lease>,
    /// When a certificate stops being valid, for certificates.
    pub expires: Option<SystemTime>,
    /// When the backend replaces this value by itself (a database static
    /// role's next rotation, from Vault's `ttl`): the sidecar reads it again
    /// just after, whatever its poll interval.
    pub rotates: Option<SystemTime>,
    /// The value exactly as the backend stores it, for backends that store one
    /// value per secret (an AWS SecretString or SecretBinary): what `raw`
    /// without `key` writes; for a Vault read rendered by a `go-template`,
    /// the JSON of the response's `data`, which the template sees as `.Data`.
    pub stored: Option<SecretBytes>,
    /// The version before this one, for AWS secrets with `previous: true`:
    /// written to `<file>.previous` so apps can fall back during a rotation.
    pub previous: Option<Box<Fetched>>,
    /// Where and when the backend made this version, as it says: the proxy
    /// answers with these rather than with its own.
    pub origin: Origin,
    /// How many times the source had found its login refused or revoked when
    /// the read began (its `login_epoch`): a value read before the last of
    /// those is read again before the proxy serves it.
    pub login_epoch: u64,
}

/// The backend's own name and creation time of a version, when it gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The secret's ARN (AWS Secrets Manager, Parameter Store).
    pub arn: Option<String>,
    /// When the version was made (AWS `CreatedDate`, a parameter's
    /// `LastModifiedDate`, KV v2 `created_time`).
    pub created: Option<SystemTime>,
}

impl Fetched {
    /// A secret with fields only: no version, lease or expiry.
    pub fn fields(fields: Fields) -> Self {
        Self {
            fields,
            version: None,
            lease: None,
            expires: None,
            rotates: None,
            stored: None,
            previous: None,
            origin: Origin::default(),
            login_epoch: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn debug_hides_the_value() {
        let s = SecretBytes::copy_from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "[redacted]");
        let mut fields = Fields::new();
        fields.insert("password".into(), s);
        let f = Fetched::fields(fields);
        let shown = format!("{f:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password"));
    }

    #[test]
    fn expose_gives_the_bytes_back() {
        let s = SecretBytes::new(vec![0, 255, 10]);
        assert_eq!(s.expose(), &[0, 255, 10]);
        assert_eq!(s.expose_str(), None);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn writes_grow_the_buffer() {
        let mut s = SecretBytes::default();
        for _ in 0..100 {
            s.write_all(b"abcdef").unwrap();
        }
        assert_eq!(s.len(), 600);
        assert!(s.expose().starts_with(b"abcdefabcdef"));
        let fitted = s.clone().fitted();
        assert_eq!(fitted.0.capacity(), 600);
        assert_eq!(fitted, s);
    }
}
