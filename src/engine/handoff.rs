//! The hand-off state from `init` to the sidecar, so that one pod takes one
//! set of dynamic credentials: `init` leaves the tokens it
//! used and the leased or issued secrets it wrote in
//! `output.state_dir/state.json` (mode 0400, in a 0700 directory on tmpfs
//! that only ramsecrets' own containers mount, never under `output.dir`),
//! and `run` adopts them, renewing those leases instead of
//! taking new ones. The sidecar leaves its own state there too, after its
//! first cycle and each round, so that a sidecar the kubelet restarts adopts
//! what the killed one held; after revoking its leases at exit it removes the
//! file. Without `state_dir` nothing is handed over. The sidecar
//! trusts the state only as [`crate::os::trust`] allows, range-checks every number
//! in it, and takes only leases and certificates from it, never a static secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::clock::MAX_SPAN;
use crate::config::{Address, Config, Output, Secret};
use crate::exit::{Exit, ExitCode};
use crate::os::trust::{self, Refused, Rules};
use crate::output::{self, OutputDir};
use crate::render::format::Rendered;
use crate::secret::{Fetched, Fields, Lease, SecretBytes};
use crate::source::Source;

const FILE: &str = "state.json";
/// The state file's format: written into it, and a file of any other
/// version is not read (version 1 kept addresses as `Debug` text).
const VERSION: u64 = 2;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Largest state file read.
const MAX_SIZE: u64 = 1 << 20;
/// How far in the future `fetched_at` may lie (the clocks of one node agree).
const SKEW: Duration = Duration::from_secs(300);

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory or file is not safe to keep credentials in.
    #[error("output.state_dir {path}: {reason}; ramsecrets keeps its Vault token there, so only ramsecrets' uid may write it, on tmpfs")]
    Untrusted {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: Refused,
    },
    /// The directory is the output directory or inside it.
    #[error("output.state_dir {path} lies inside output.dir {dir}, which the app reads; give output.state_dir its own volume")]
    InsideOutput {
        /// The state directory.
        path: PathBuf,
        /// The output directory.
        dir: PathBuf,
    },
    /// The state file is of a format this ramsecrets does not read.
    #[error("{path}: {}, but this ramsecrets reads only version {VERSION}", found.map_or("the state has no version".to_owned(), |v| format!("the state is version {v}")))]
    Version {
        /// The state file.
        path: PathBuf,
        /// The version it says it is, if any.
        found: Option<u64>,
    },
    /// The state could not be written.
    #[error(transparent)]
    Write(#[from] output::Error),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        Exit::CantCreate
    }
}

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
    pub address: Address,
    /// When it was fetched: lease durations count from here.
    pub fetched_at: SystemTime,
    /// What was fetched.
    pub fetched: Fetched,
}

impl Held {
    /// Whether a sidecar should keep this rather than fetch `secret` again: a
    /// lease taken at the same read path, or a certificate, not yet expired.
    /// Static secrets are never taken from the state.
    pub fn usable(&self, secret: &Secret, now: SystemTime) -> bool {
        if self.address != secret.address {
            return false;
        }
        let address = &secret.address;
        let end = match (
            address.read_path(),
            &self.fetched.lease,
            self.fetched.expires,
        ) {
            // A lease id is `<read path>/<id>`: one for another path is not this secret's.
            (Some(path), Some(l), _) if l.id.starts_with(&format!("{path}/")) => {
                self.fetched_at.checked_add(l.duration)
            }
            // A certificate: it is good until it expires.
            (None, None, Some(e)) if address.mints() => Some(e),
            _ => None,
        };
        end.is_some_and(|end| end > now + Duration::from_secs(5))
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
    address: &'a Address,
    fetched_at: u64,
    version: Option<&'a str>,
    lease: Option<LeaseDoc>,
    expires: Option<u64>,
    fields: BTreeMap<&'a str, Exposed<'a>>,
    /// The response's `data` a `go-template` renders from.
    #[serde(skip_serializing_if = "Option::is_none")]
    stored: Option<Exposed<'a>>,
}

#[derive(Serialize)]
struct DocOut<'a> {
    version: u64,
    tokens: BTreeMap<&'a str, Exposed<'a>>,
    secrets: BTreeMap<&'a str, HeldOut<'a>>,
}

#[derive(Deserialize)]
struct HeldIn {
    address: Address,
    fetched_at: u64,
    version: Option<String>,
    lease: Option<LeaseDoc>,
    expires: Option<u64>,
    fields: BTreeMap<String, Zeroizing<String>>,
    #[serde(default)]
    stored: Option<Zeroizing<String>>,
}

/// What is read of a state file first, before its version is known.
#[derive(Deserialize)]
struct Versioned {
    version: Option<u64>,
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

/// Seconds since the epoch as a time, if it is no further than `MAX_SPAN` past `now`.
fn time(secs: u64, now: SystemTime) -> Option<SystemTime> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .filter(|t| *t <= now + MAX_SPAN)
}

fn rules(output: &Output) -> Rules {
    Rules {
        root_may_own: false,
        memory_only: !output.allow_disk,
    }
}

/// Opens the state directory and checks that it can be trusted: no symlink,
/// ramsecrets' own, not group/other writable, in memory (unless `allow_disk`),
/// and neither the output directory nor under it.
fn open_dir(output: &Output, path: &Path, out: &OutputDir) -> Result<OutputDir, Error> {
    let untrusted = |reason| Error::Untrusted {
        path: path.to_owned(),
        reason,
    };
    let fd = trust::open_dir(rustix::fs::CWD, path, rules(output)).map_err(untrusted)?;
    if out.encloses(&fd).map_err(|e| untrusted(Refused::Io(e)))? {
        return Err(Error::InsideOutput {
            path: path.to_owned(),
            dir: out.path().to_owned(),
        });
    }
    Ok(OutputDir::opened(fd, path.to_owned()))
}

/// The state directory `init` and the sidecar write to, created 0700 if
/// missing; `None` when `output.state_dir` is not set. `init` opens it before
/// it fetches anything, so that a bad one fails the run before a file is
/// written.
pub fn prepare(output: &Output, out: &OutputDir) -> Result<Option<OutputDir>, Error> {
    let Some(path) = &output.state_dir else {
        return Ok(None);
    };
    match rustix::fs::mkdir(path, rustix::fs::Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => {
            return Err(Error::Untrusted {
                path: path.clone(),
                reason: Refused::Io(e.into()),
            })
        }
    }
    open_dir(output, path, out).map(Some)
}

impl State {
    /// The tokens `sources` hold now and the leased or issued secrets among
    /// `held` (index into `config.secrets`, what was fetched, and when).
    pub async fn collect<'a>(
        config: &Config,
        sources: &[Arc<dyn Source>],
        held: impl IntoIterator<Item = (usize, &'a Fetched, SystemTime)>,
    ) -> State {
        let mut state = State::default();
        for (s, source) in config.sources.iter().zip(sources) {
            if let Some(token) = source.session().await {
                state.tokens.insert(s.name.clone(), token);
            }
        }
        for (i, fetched, at) in held {
            if fetched.lease.is_some() || fetched.expires.is_some() {
                let secret = &config.secrets[i];
                state.secrets.insert(
                    secret.name.clone(),
                    Held {
                        address: secret.address.clone(),
                        fetched_at: at,
                        fetched: fetched.clone(),
                    },
                );
            }
        }
        state
    }

    /// The ids of the leases handed over for secrets of source `source`
    /// (an index into `config.sources`).
    pub fn leases_of(&self, config: &Config, source: usize) -> Vec<String> {
        config
            .secrets
            .iter()
            .filter(|s| s.source == source)
            .filter_map(|s| {
                Some(
                    self.secrets
                        .get(&s.name)?
                        .fetched
                        .lease
                        .as_ref()?
                        .id
                        .clone(),
                )
            })
            .collect()
    }

    /// Whether there is nothing to hand over.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.secrets.is_empty()
    }

    /// Removes the state file from `dir` (its leases were revoked).
    pub fn clear(dir: &OutputDir) -> Result<(), Error> {
        Ok(dir.remove(FILE)?)
    }

    /// Writes the state atomically into `dir` (from [`prepare`]).
    pub fn save(&self, dir: &OutputDir) -> Result<(), Error> {
        let bytes = self.to_bytes().map_err(|e| output::Error::Write {
            dir: dir.path().to_owned(),
            file: FILE.into(),
            source: e.into(),
        })?;
        let file = Rendered {
            file: FILE.into(),
            bytes,
            mode: 0o400,
        };
        dir.write_all([&file])?;
        Ok(())
    }

    /// The state file's contents.
    pub(crate) fn to_bytes(&self) -> serde_json::Result<SecretBytes> {
        let doc = DocOut {
            version: VERSION,
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
                        stored: f.stored.as_ref().map(Exposed),
                    };
                    (name.as_str(), held)
                })
                .collect(),
        };
        let mut bytes = SecretBytes::default();
        serde_json::to_writer(&mut bytes, &doc)?;
        Ok(bytes)
    }

    /// Reads the state `init` left, if any. A state that cannot be trusted or
    /// fails any check is logged once (why, never what it holds) and unused.
    pub fn load(output: &Output, out: &OutputDir) -> State {
        let Some(path) = &output.state_dir else {
            return State::default();
        };
        match State::read(output, path, out) {
            Ok(state) => state,
            Err(Error::Untrusted { reason, .. }) if reason.is_missing() => State::default(),
            Err(e) => {
                tracing::warn!(error = %e, "the hand-off state is not used; fetching afresh");
                State::default()
            }
        }
    }

    fn read(output: &Output, path: &Path, out: &OutputDir) -> Result<State, Error> {
        let dir = open_dir(output, path, out)?;
        let file = path.join(FILE);
        let untrusted = |reason| Error::Untrusted {
            path: file.clone(),
            reason,
        };
        let bytes =
            trust::read(dir.fd(), Path::new(FILE), rules(output), MAX_SIZE).map_err(untrusted)?;
        State::parse(bytes.expose(), &file, SystemTime::now())
    }

    /// The state in `bytes`, read from `file` at `now`, if it is one of this
    /// version and every value in it is in range.
    pub(crate) fn parse(bytes: &[u8], file: &Path, now: SystemTime) -> Result<State, Error> {
        let untrusted = |reason| Error::Untrusted {
            path: file.to_owned(),
            reason,
        };
        // serde's message can quote the content: only the position is kept.
        let not_state = |e: serde_json::Error| {
            untrusted(Refused::Io(std::io::Error::other(format!(
                "it is not a hand-off state (line {}, column {})",
                e.line(),
                e.column()
            ))))
        };
        let found = serde_json::from_slice::<Versioned>(bytes)
            .map_err(not_state)?
            .version;
        if found != Some(VERSION) {
            return Err(Error::Version {
                path: file.to_owned(),
                found,
            });
        }
        let doc = serde_json::from_slice::<DocIn>(bytes).map_err(not_state)?;
        doc.into_state(now)
            .map_err(|what| untrusted(Refused::Io(std::io::Error::other(what))))
    }
}

impl DocIn {
    /// The state, if every value in it is in range.
    fn into_state(self, now: SystemTime) -> Result<State, String> {
        let mut state = State::default();
        for (name, token) in self.tokens {
            let token = decode(&token)
                .filter(|t| !t.is_empty() && t.expose().iter().all(u8::is_ascii_graphic))
                .ok_or_else(|| format!("the token of source {name} is not a token"))?;
            state.tokens.insert(name, token);
        }
        for (name, h) in self.secrets {
            let bad = |what: &str| format!("secret {name}: {what} is out of range");
            let fetched_at = time(h.fetched_at, now)
                .filter(|t| *t <= now + SKEW)
                .ok_or_else(|| bad("fetched_at"))?;
            let lease = match h.lease {
                Some(l) if Duration::from_secs(l.duration) <= MAX_SPAN => Some(Lease {
                    id: l.id,
                    duration: Duration::from_secs(l.duration),
                    renewable: l.renewable,
                }),
                Some(_) => return Err(bad("lease.duration")),
                None => None,
            };
            let expires = match h.expires {
                Some(e) => Some(time(e, now).ok_or_else(|| bad("expires"))?),
                None => None,
            };
            let fields = h
                .fields
                .iter()
                .map(|(k, v)| Some((k.clone(), decode(v)?)))
                .collect::<Option<Fields>>()
                .ok_or_else(|| format!("secret {name}: a field is not base64"))?;
            let stored = match &h.stored {
                Some(s) => {
                    Some(decode(s).ok_or_else(|| format!("secret {name}: stored is not base64"))?)
                }
                None => None,
            };
            let fetched = Fetched {
                fields,
                version: h.version,
                lease,
                expires,
                // Static roles hold no lease: they are never handed over.
                rotates: None,
                // A leased read rendered by a `go-template` renders from this.
                stored,
                previous: None,
                // Only the proxy answers with it, and the proxy has no hand-off.
                origin: Default::default(),
                // Read with the token handed over with it, which the sidecar's
                // source adopts before its first login.
                login_epoch: 0,
            };
            let held = Held {
                address: h.address,
                fetched_at,
                fetched,
            };
            state.secrets.insert(name, held);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests;
