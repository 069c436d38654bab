//! Vault KV rotation: a new version with new values of the same shape
//! ([`super::shape`]), and its undoing, which writes the old data back only
//! while the secret still holds what the drill wrote: with check-and-set on
//! the drill's version (KV v2), or after comparing the data (KV v1 keeps no
//! versions). A write made meanwhile, such as a real rotation, is left as it is.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::config::KvVersion;
use crate::secret::SecretBytes;
use crate::source::rotator::shape::{self, Set};
use crate::source::rotator::{Error, Restored, Rotated, Undo};
use crate::source::{self, VaultSource};

/// How to put the old KV data back.
pub(super) struct KvUndo {
    /// The read and write path.
    path: String,
    /// The old data, as the write's JSON body (with `cas` when [`Wrote::Version`]).
    body: SecretBytes,
    /// What the drill wrote, to tell whether the secret moved on since.
    wrote: Wrote,
}

/// What the drill wrote.
enum Wrote {
    /// KV v2: the version number.
    Version(u64),
    /// KV v1 (or a v2 answer without a version): the data, and where a read
    /// of the path holds it.
    Data(SecretBytes, &'static str),
}

/// Writes a new KV version with rotated fields.
pub(super) async fn rotate(
    vault: &VaultSource,
    mount: &str,
    path: &str,
    version: Option<KvVersion>,
    sets: &[Set],
    deadline: tokio::time::Instant,
) -> Result<Rotated, Error> {
    let version = match version {
        Some(v) => v,
        None => vault.kv_engine(mount, deadline).await?,
    };
    let (at, pointer) = match version {
        KvVersion::V2 => (format!("{mount}/data/{path}"), "/data/data"),
        KvVersion::V1 => (format!("{mount}/{path}"), "/data"),
    };
    let mut answer = vault
        .request(reqwest::Method::GET, &at, None, deadline)
        .await?;
    let from = answer
        .pointer("/data/metadata/version")
        .and_then(Value::as_u64)
        .map(|v| v.to_string());
    let old: Map<String, Value> = match answer.pointer_mut(pointer).map(Value::take) {
        Some(Value::Object(m)) => m,
        _ => {
            shape::wipe(&mut answer);
            return Err(Error::Source(source::Error::not_found(format!(
                "kv `{mount}/{path}`: no data to rotate"
            ))));
        }
    };
    shape::wipe(&mut answer);
    let rotated = shape::rotate_fields(&old, sets).map_err(Error::Usage);
    let mut old = Value::Object(old);
    let (new, fields) = match rotated {
        Ok(r) => r,
        Err(e) => {
            shape::wipe(&mut old);
            return Err(e);
        }
    };
    let mut new = Value::Object(new);
    let written = vault
        .request(
            reqwest::Method::POST,
            &at,
            Some(&body(version, &new, None)),
            deadline,
        )
        .await;
    let to = written
        .as_ref()
        .ok()
        .and_then(|a| a.pointer("/data/version"))
        .and_then(Value::as_u64);
    let wrote = match (version, to) {
        (KvVersion::V2, Some(n)) => Wrote::Version(n),
        _ => Wrote::Data(shape::to_bytes(&new), pointer),
    };
    let cas = match wrote {
        Wrote::Version(n) => Some(n),
        Wrote::Data(..) => None,
    };
    let undo_body = body(version, &old, cas);
    shape::wipe(&mut old);
    shape::wipe(&mut new);
    written?;
    Ok(Rotated {
        action: "kv write",
        from,
        to: to.map(|v| v.to_string()),
        invented: shape::invented(&fields, sets),
        fields,
        steps: Vec::new(),
        written: Instant::now(),
        undo: Some(Undo::new(KvUndo {
            path: at,
            body: undo_body,
            wrote,
        })),
    })
}

/// A write body for `data`: KV v2 wraps it in `data` (with `cas` when given).
fn body(version: KvVersion, data: &Value, cas: Option<u64>) -> SecretBytes {
    match version {
        KvVersion::V2 => {
            let mut out = SecretBytes::default();
            if let Some(n) = cas {
                out.extend_from_slice(format!("{{\"options\":{{\"cas\":{n}}},").as_bytes());
            } else {
                out.extend_from_slice(b"{");
            }
            out.extend_from_slice(b"\"data\":");
            out.extend_from_slice(shape::to_bytes(data).expose());
            out.extend_from_slice(b"}");
            out
        }
        KvVersion::V1 => shape::to_bytes(data),
    }
}

/// Writes the old data back, unless the secret moved on since the drill wrote it.
pub(super) async fn restore(
    vault: &VaultSource,
    undo: &KvUndo,
    deadline: tokio::time::Instant,
) -> Result<Restored, Error> {
    if let Some(why) = moved(vault, undo, deadline).await? {
        return Ok(Restored::Left(why));
    }
    match vault
        .request(
            reqwest::Method::POST,
            &undo.path,
            Some(&undo.body),
            deadline,
        )
        .await
    {
        Ok(answer) => Ok(Restored::Done(
            match answer.pointer("/data/version").and_then(Value::as_u64) {
                Some(v) => format!("the old data written back as version {v}"),
                None => "the old data written back".into(),
            },
        )),
        // Written between the look and the write: check-and-set refused it.
        Err(e @ source::Error::Data { .. }) if e.to_string().contains("check-and-set") => {
            Ok(Restored::Left(match undo.wrote {
                Wrote::Version(n) => {
                    format!("a version was written after the drill's version {n}: left as it is")
                }
                Wrote::Data(..) => "the secret was written after the drill: left as it is".into(),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Why the old data must not go back: the secret no longer holds what the
/// drill wrote.
async fn moved(
    vault: &VaultSource,
    undo: &KvUndo,
    deadline: tokio::time::Instant,
) -> Result<Option<String>, Error> {
    let mut answer = match vault
        .request(reqwest::Method::GET, &undo.path, None, deadline)
        .await
    {
        Ok(a) => a,
        Err(source::Error::NotFound { .. }) => {
            return Ok(Some(
                "the secret was deleted after the drill wrote it: left as it is".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let why = match &undo.wrote {
        Wrote::Version(n) => match answer
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
        {
            Some(m) if m == *n => None,
            Some(m) => Some(format!(
                "version {m} was written after the drill's version {n}: left as it is"
            )),
            None => Some(format!(
                "the latest version is unknown, so it may not be the drill's version {n}: left as it is"
            )),
        },
        Wrote::Data(ours, pointer) => {
            let mut ours: Value = serde_json::from_slice(ours.expose()).unwrap_or_default();
            let same = answer.pointer(pointer) == Some(&ours);
            shape::wipe(&mut ours);
            (!same).then(|| {
                "the secret was written after the drill (KV v1 keeps no versions; its data differs from the drill's): left as it is".to_owned()
            })
        }
    };
    shape::wipe(&mut answer);
    Ok(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_undo_of_a_v2_write_carries_the_drills_version_as_cas() {
        let data = json!({ "password": "old" });
        let v2: Value =
            serde_json::from_slice(body(KvVersion::V2, &data, Some(7)).expose()).unwrap();
        assert_eq!(v2, json!({ "options": { "cas": 7 }, "data": data }));
        let plain: Value =
            serde_json::from_slice(body(KvVersion::V2, &data, None).expose()).unwrap();
        assert_eq!(plain, json!({ "data": data }));
        let v1: Value = serde_json::from_slice(body(KvVersion::V1, &data, None).expose()).unwrap();
        assert_eq!(v1, data);
    }
}
