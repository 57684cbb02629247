//! OAuth2 client credentials of one Greenhouse account.

use std::fmt;

/// Harvest v3 API credentials of one account. `Debug` prints `***` for the secret.
#[derive(Clone)]
pub struct Credentials {
    /// OAuth2 client id, sent as the user name of HTTP Basic auth.
    pub client_id: String,

    /// OAuth2 client secret, sent as the password of HTTP Basic auth.
    pub client_secret: String,

    /// Greenhouse user id sent as `sub` in the token request, which Greenhouse's docs show
    /// with every client-credentials request. Left out of the request when `None`.
    pub user_id: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("user_id", &self.user_id)
            .finish()
    }
}
