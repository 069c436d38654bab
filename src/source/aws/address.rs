//! What a Secrets Manager secret reads: a secret by name or ARN, at a version
//! ([`super::config`] parses it from the `secret_id`, `version_stage`,
//! `version_id` and `previous` keys).

use super::{AwsVersion, AWS_PREVIOUS};
use crate::source::address::Form;

/// What a Secrets Manager secret reads. The hand-off state stores it as it
/// is (`{"secret_id": {"id": …}}`), so its serialized form stays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsAddress {
    /// A secret, by name or ARN.
    SecretId {
        /// Name or ARN.
        id: String,
        /// Which version (default: stage `AWSCURRENT`).
        version: AwsVersion,
        /// Also write `AWSPREVIOUS` to `<file>.previous`.
        previous: bool,
    },
}

impl Form for AwsAddress {
    fn kind(&self) -> &'static str {
        "secret_id"
    }

    fn key(&self) -> String {
        let AwsAddress::SecretId { id, .. } = self;
        id.clone()
    }

    fn summary(&self) -> String {
        let AwsAddress::SecretId {
            id,
            version,
            previous,
        } = self;
        let version = match version {
            v if v.is_current() => String::new(),
            AwsVersion::Stage(stage) => format!(" @{stage}"),
            AwsVersion::Id(v) => format!(" version {v}"),
        };
        let previous = if *previous {
            format!(" +{AWS_PREVIOUS}")
        } else {
            String::new()
        };
        format!("secret_id {id}{version}{previous}")
    }

    fn one_stored_value(&self) -> bool {
        true
    }

    fn writes_previous(&self) -> bool {
        let AwsAddress::SecretId { previous, .. } = self;
        *previous
    }
}
