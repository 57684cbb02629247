//! Process-wide TLS crypto provider for reqwest.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs rustls's `ring` crypto provider as the process default, once.
///
/// reqwest is built with `rustls-no-provider`, which leaves the choice of provider to the
/// program, and `ring` builds much faster than `aws-lc-rs`. Calling this again does nothing.
/// If another part of the program installed a provider first, that one stays.
pub fn install_crypto_provider() {
    INSTALL.call_once(|| {
        // An error means a provider is already installed, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
