//! The one TLS stack: rustls over ring for every client and server (Vault, AWS, the
//! Kubernetes API, the webhook, `http` actions and probes). ring is the smaller of rustls'
//! two providers and builds without cmake, so no second crypto library (aws-lc, the AWS
//! SDK's default) is linked in.

use std::sync::Arc;

use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The crypto provider every TLS connection uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's provider, for the clients that take the process default
/// (reqwest, hence vaultrs); called once, before any command builds a client.
pub fn install() {
    // Err only when a provider is already installed, which is then ring too.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The AWS SDK's HTTPS client (hyper 1, rustls) over ring, for every SDK loader.
pub fn aws_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
