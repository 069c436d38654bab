//! What a secret reads: its [`Address`], one variant per backend (listed in
//! [`super::backend`]), each holding the backend's own form of address, which
//! the backend's folder parses from the config's keys and describes through
//! the [`Form`] trait. The address is the secret's identity for the rest of
//! the crate, which handles it through the methods here.

use super::Address;

/// What a backend's form of address says about itself.
pub(crate) trait Form {
    /// The config key that gives this kind of address: `kv`, `read`, `pki`,
    /// `secret_id`, `parameter` or `parameters_by_path`.
    fn kind(&self) -> &'static str;
    /// The address as the `file` source keys it, and as logs name it.
    fn key(&self) -> String;
    /// How `ramsecrets check` shows what a secret reads.
    fn summary(&self) -> String;
    /// Whether each read mints new credentials (a lease or a certificate).
    fn mints(&self) -> bool {
        false
    }
    /// The path of a logical read.
    fn read_path(&self) -> Option<&str> {
        None
    }
    /// The fields written one file each, with the suffix of their files.
    fn field_files(&self) -> Option<&'static [(&'static str, &'static str)]> {
        None
    }
    /// Whether the secret is one stored value.
    fn one_stored_value(&self) -> bool {
        false
    }
    /// Whether the version before the current one is written too, to
    /// `<file>.previous`.
    fn writes_previous(&self) -> bool {
        false
    }
}

impl Address {
    /// The config key that gives this kind of address: `kv`, `read`, `pki`,
    /// `secret_id`, `parameter` or `parameters_by_path`.
    pub fn kind(&self) -> &'static str {
        self.form().kind()
    }

    /// Whether each read mints new credentials (a lease or a certificate): a
    /// held value is kept until it runs out, never read again on demand.
    pub fn mints(&self) -> bool {
        self.form().mints()
    }

    /// The path of a logical read: what its lease ids start with, and what
    /// agent templates (`go-template`, Vault Agent's) render the answer of.
    pub fn read_path(&self) -> Option<&str> {
        self.form().read_path()
    }

    /// For an address that writes one file per field (a certificate's PEM
    /// files), each field with the suffix of its file; `None` for one file.
    pub fn field_files(&self) -> Option<&'static [(&'static str, &'static str)]> {
        self.form().field_files()
    }

    /// Whether the secret is one stored value, written as it is by default
    /// (when its source is the backend, not the `file` source).
    pub fn one_stored_value(&self) -> bool {
        self.form().one_stored_value()
    }

    /// Whether the version before the current one is written too, to
    /// `<file>.previous` (an AWS secret's `AWSPREVIOUS`).
    pub fn writes_previous(&self) -> bool {
        self.form().writes_previous()
    }

    /// How `ramsecrets check` shows what a secret reads.
    pub fn summary(&self) -> String {
        self.form().summary()
    }

    /// `` kind `key` ``, as messages name an address.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.kind(), self.key())
    }

    /// The address as the `file` source keys it, and as logs name it.
    pub fn key(&self) -> String {
        self.form().key()
    }
}

#[cfg(test)]
mod tests;
