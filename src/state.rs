//! Hand-off from `init` to the sidecar, so that one pod takes one set of
//! dynamic credentials: `init` leaves the tokens it used and the leased or
//! issued secrets it wrote in `output.state_dir/state.json` (mode 0400, in a
//! 0700 directory on tmpfs that only ramsecrets' own containers mount), and
//! `run` adopts them, renewing those leases instead of taking new ones.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::config::{Config, Output};
use crate::output::{self, OutputDir};
use crate::secret::{Fetched, Fields, Lease, SecretBytes};

const FILE: &str = "state.json";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What `init` hands over.
#[derive(Debug, Default)]
pub struct State {
    /// Token in use per source name.
    pub tokens: BTreeMap<String, SecretBytes>,
    /// Leased or issued secrets per secret name.
    pub secrets: BTreeMap<String, Held>,
}

/// A leased or issued secret as `init` fetched it.
#[derive(Debug, Clone)]
pub struct Held {
    /// The secret's address when fetched (adopted only if unchanged).
    pub address: String,
    /// When it was fetched: lease durations count from here.
    pub fetched_at: SystemTime,
    /// What was fetched.
    pub fetched: Fetched,
}

impl Held {
    /// Whether a sidecar should keep this secret rather than fetch it again
    /// (it holds a lease or certificate that has not yet expired).
    pub fn usable(&self, now: SystemTime) -> bool {
        let end = match (&self.fetched.lease, self.fetched.expires) {
            (Some(l), _) => self.fetched_at + l.duration,
            (None, Some(e)) => e,
            (None, None) => return false,
        };
        end > now + Duration::from_secs(5)
    }
}

/// Base64 of secret bytes, built in a zeroizing buffer (this module is an edge
/// where secret bytes go to a file).
struct Exposed<'a>(&'a SecretBytes);

impl Serialize for Exposed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(B64.encode(self.0.expose())))
    }
}

#[derive(Serialize, Deserialize)]
struct LeaseDoc {
    id: String,
    duration: u64,
    renewable: bool,
}

#[derive(Serialize)]
struct HeldOut<'a> {
    address: &'a str,
    fetched_at: u64,
    version: Option<&'a str>,
    lease: Option<LeaseDoc>,
    expires: Option<u64>,
    fields: BTreeMap<&'a str, Exposed<'a>>,
}

#[derive(Serialize)]
struct DocOut<'a> {
    version: u32,
    tokens: BTreeMap<&'a str, Exposed<'a>>,
    secrets: BTreeMap<&'a str, HeldOut<'a>>,
}

#[derive(Deserialize)]
struct HeldIn {
    address: String,
    fetched_at: u64,
    version: Option<String>,
    lease: Option<LeaseDoc>,
    expires: Option<u64>,
    fields: BTreeMap<String, Zeroizing<String>>,
}

#[derive(Deserialize)]
struct DocIn {
    tokens: BTreeMap<String, Zeroizing<String>>,
    secrets: BTreeMap<String, HeldIn>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn decode(b64: &str) -> Option<SecretBytes> {
    B64.decode(b64).ok().map(SecretBytes::new)
}

/// The state directory, opened like the output directory (tmpfs check, no-follow writes).
fn open_dir(output: &Output) -> output::Result<OutputDir> {
    if let Err(e) = std::fs::create_dir(&output.state_dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(output::Error::OpenDir {
                path: output.state_dir.clone(),
                source: e,
            });
        }
    }
    let _ = std::fs::set_permissions(
        &output.state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );
    OutputDir::open(&Output {
        dir: output.state_dir.clone(),
        mode: 0o400,
        owner: None,
        allow_disk: output.allow_disk,
        state_dir: output.state_dir.clone(),
        wipe_on_exit: false,
    })
}

impl State {
    /// Writes the state atomically.
    pub fn save(&self, output: &Output) -> output::Result<()> {
        let doc = DocOut {
            version: 1,
            tokens: self
                .tokens
                .iter()
                .map(|(k, v)| (k.as_str(), Exposed(v)))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .map(|(name, h)| {
                    let f = &h.fetched;
                    let held = HeldOut {
                        address: &h.address,
                        fetched_at: unix(h.fetched_at),
                        version: f.version.as_deref(),
                        lease: f.lease.as_ref().map(|l| LeaseDoc {
                            id: l.id.clone(),
                            duration: l.duration.as_secs(),
                            renewable: l.renewable,
                        }),
                        expires: f.expires.map(unix),
                        fields: f
                            .fields
                            .iter()
                            .map(|(k, v)| (k.as_str(), Exposed(v)))
                            .collect(),
                    };
                    (name.as_str(), held)
                })
                .collect(),
        };
        let mut bytes = SecretBytes::default();
        serde_json::to_writer(&mut bytes, &doc).map_err(|e| output::Error::Write {
            dir: output.state_dir.clone(),
            file: FILE.into(),
            source: e.into(),
        })?;
        let dir = open_dir(output)?;
        let staged = dir.stage(FILE, &bytes, 0o400)?;
        dir.commit(staged)
    }

    /// Reads the state `init` left, if any; a damaged file is logged and ignored.
    pub fn load(config: &Config) -> State {
        let path = config.output.state_dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => SecretBytes::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return State::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the hand-off state; starting fresh");
                return State::default();
            }
        };
        let Ok(doc) = serde_json::from_slice::<DocIn>(bytes.expose()) else {
            tracing::warn!(path = %path.display(), "the hand-off state is damaged; starting fresh");
            return State::default();
        };
        let tokens = doc
            .tokens
            .into_iter()
            .filter_map(|(k, v)| Some((k, decode(&v)?)))
            .collect();
        let secrets = doc
            .secrets
            .into_iter()
            .filter_map(|(name, h)| {
                let fields: Option<Fields> = h
                    .fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), decode(v)?)))
                    .collect();
                let fetched = Fetched {
                    fields: fields?,
                    version: h.version,
                    lease: h.lease.map(|l| Lease {
                        id: l.id,
                        duration: Duration::from_secs(l.duration),
                        renewable: l.renewable,
                    }),
                    expires: h.expires.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
                    // Only Vault leases and certificates are handed over: neither has these.
                    stored: None,
                    previous: None,
                };
                let held = Held {
                    address: h.address,
                    fetched_at: UNIX_EPOCH + Duration::from_secs(h.fetched_at),
                    fetched,
                };
                Some((name, held))
            })
            .collect();
        State { tokens, secrets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_values_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "sources:\n  - file: {{ path: x }}\noutput: {{ dir: {}, allow_disk: true }}\nsecrets:\n  - name: a\n    read: db/creds/app\n",
            dir.path().display()
        );
        let config = Config::parse(&text, dir.path()).unwrap();
        let mut fields = Fields::new();
        fields.insert("password".into(), SecretBytes::copy_from("hunter2"));
        let mut fetched = Fetched::fields(fields);
        fetched.lease = Some(Lease {
            id: "database/creds/app/abc".into(),
            duration: Duration::from_secs(60),
            renewable: true,
        });
        let mut state = State::default();
        state
            .tokens
            .insert("vault".into(), SecretBytes::copy_from("s.token"));
        state.secrets.insert(
            "a".into(),
            Held {
                address: "db/creds/app".into(),
                fetched_at: UNIX_EPOCH + Duration::from_secs(unix(SystemTime::now())),
                fetched,
            },
        );
        state.save(&config.output).unwrap();
        let on_disk = std::fs::read_to_string(dir.path().join(".ramsecrets/state.json")).unwrap();
        assert!(!on_disk.contains("hunter2") && !on_disk.contains("s.token"));
        let meta = std::fs::metadata(dir.path().join(".ramsecrets")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
        let back = State::load(&config);
        assert_eq!(back.tokens["vault"].expose(), b"s.token");
        let held = &back.secrets["a"];
        assert_eq!(held.fetched.fields["password"].expose(), b"hunter2");
        assert_eq!(
            held.fetched.lease.as_ref().unwrap().duration,
            Duration::from_secs(60)
        );
        assert!(held.usable(SystemTime::now()));
        assert!(!held.usable(SystemTime::now() + Duration::from_secs(60)));
    }
}
