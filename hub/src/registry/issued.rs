//! What the registry issues: a new secret, printed once, and what is stored of it (its salted
//! hash; for broker accounts also mosquitto's hash, for edges the batch MAC key). Both back ends
//! issue through these, so an edge, token or department consumer is the same on either.

use super::validation::{self, Reference};
use super::{secrets, RegistryError, Scope, TOKEN_PREFIX};

/// A fresh secret and its salted hash ([`secrets::hash`]).
pub(super) struct Secret {
    /// Shown to the operator once; never stored.
    pub(super) secret: String,
    pub(super) hash: String,
}

impl Secret {
    pub(super) fn new() -> Secret {
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        Secret { secret, hash }
    }

    /// mosquitto's hash of the secret, for an account the broker lets in.
    pub(super) fn broker_hash(&self) -> String {
        crate::broker::mosquitto::password_hash(&self.secret)
    }
}

/// A new API token for `department` with `scope` (validated): its id and secret.
pub(super) struct NewToken<'a> {
    pub(super) department: Option<&'a str>,
    pub(super) scope: Scope,
    pub(super) id: String,
    pub(super) secret: Secret,
}

impl<'a> NewToken<'a> {
    pub(super) fn new(department: Option<&'a str>, scope: Scope) -> Result<Self, RegistryError> {
        validation::token_department(department, scope)?;
        Ok(NewToken {
            department,
            scope,
            id: hex::encode(rand::random::<[u8; 6]>()),
            secret: Secret::new(),
        })
    }

    /// The rows the token names, which must exist when it is stored.
    pub(super) fn references(&self) -> Vec<Reference<'a>> {
        self.department
            .map(validation::department)
            .into_iter()
            .collect()
    }

    /// The token as its holder presents it: `wgt_<id>.<secret>`.
    pub(super) fn token(&self) -> String {
        format!("{TOKEN_PREFIX}{}.{}", self.id, self.secret.secret)
    }
}

/// A new consumer of `department`: a fresh username and its secret.
pub(super) struct NewMqttUser<'a> {
    pub(super) department: &'a str,
    pub(super) username: String,
    pub(super) secret: Secret,
    pub(super) broker_hash: String,
}

impl<'a> NewMqttUser<'a> {
    pub(super) fn new(department: &'a str) -> Self {
        let secret = Secret::new();
        NewMqttUser {
            department,
            username: validation::new_mqtt_username(department),
            broker_hash: secret.broker_hash(),
            secret,
        }
    }
}

/// A (re-)issued secret of edge `edge_id` (validated): what `edges` stores of it.
pub(super) struct EdgeSecret<'a> {
    pub(super) edge_id: &'a str,
    /// Set on a new edge; `None` keeps a re-issued edge's.
    pub(super) name: Option<&'a str>,
    pub(super) site: Option<&'a str>,
    pub(super) secret: Secret,
    /// The key of the batches' MAC ([`protocol::uplink::mac_key`]).
    pub(super) mac_key: [u8; 32],
    pub(super) broker_hash: String,
}

impl<'a> EdgeSecret<'a> {
    pub(super) fn new(
        edge_id: &'a str,
        name: Option<&'a str>,
        site: Option<&'a str>,
    ) -> Result<Self, RegistryError> {
        let edge_id = validation::edge_id(edge_id)?;
        let secret = Secret::new();
        Ok(EdgeSecret {
            edge_id,
            name,
            site,
            mac_key: protocol::uplink::mac_key(&secret.secret),
            broker_hash: secret.broker_hash(),
            secret,
        })
    }
}
