//! `[victoria]`: where readings are queried in cluster mode, and the bounds of every query.

use super::super::TsError;
use serde::{Deserialize, Serialize};

/// VictoriaMetrics query settings (`[victoria]`). Present: the readings API and the charts are
/// answered from this server (every hub sees every reading the hubs' `[influx]` sinks wrote);
/// absent (the default): from the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictoriaConfig {
    /// e.g. `http://127.0.0.1:8428` (single-node) or the `vmselect` prefix of a cluster,
    /// `http://vmselect:8481/select/0/prometheus`. `user:password@` in it becomes basic auth
    /// (vmauth) and is never shown in errors or logs.
    pub url: String,
    /// Timeout of one HTTP request (connect + response), ms. Default 10 000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Largest response body accepted, bytes; a larger one is refused (the query retries on a
    /// smaller time window, so this bounds memory, not what can be asked). Default 32 MiB.
    #[serde(default = "default_response_bytes_max")]
    pub response_bytes_max: u64,
}

fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_response_bytes_max() -> u64 {
    32 << 20
}

/// Smallest `response_bytes_max` allowed: one export line of one sample must fit.
const RESPONSE_BYTES_MIN: u64 = 4096;

impl VictoriaConfig {
    /// Defaults for everything but the server.
    pub fn new(url: &str) -> VictoriaConfig {
        VictoriaConfig {
            url: url.into(),
            request_timeout_ms: default_request_timeout_ms(),
            response_bytes_max: default_response_bytes_max(),
        }
    }

    /// The checks `VictoriaQuery::new` applies, with the fix in the message.
    pub fn validate(&self) -> Result<(), TsError> {
        if self.request_timeout_ms == 0 {
            return Err(TsError::Store(
                "victoria.request_timeout_ms must be > 0 (default 10000)".into(),
            ));
        }
        if self.response_bytes_max < RESPONSE_BYTES_MIN {
            return Err(TsError::Store(format!(
                "victoria.response_bytes_max must be >= {RESPONSE_BYTES_MIN} (default {})",
                default_response_bytes_max()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::HubConfig;
    use std::path::Path;

    #[test]
    fn a_victoria_section_takes_defaults_and_refuses_unknown_keys() {
        let c = HubConfig::parse(
            Path::new("hub.toml"),
            "[victoria]\nurl = \"http://vm:8428\"\n",
        )
        .unwrap();
        let v = c.victoria.unwrap();
        assert_eq!(v.url, "http://vm:8428");
        assert_eq!(v.request_timeout_ms, 10_000);
        assert_eq!(v.response_bytes_max, 32 << 20);
        let err = HubConfig::parse(
            Path::new("hub.toml"),
            "[victoria]\nurl = \"http://vm:8428\"\nquery_url = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("query_url"), "{err}");
        assert!(HubConfig::parse(Path::new("hub.toml"), "")
            .unwrap()
            .victoria
            .is_none());
    }

    #[test]
    fn bounds_of_zero_are_refused_with_the_fix() {
        let mut v = super::VictoriaConfig::new("http://vm:8428");
        v.request_timeout_ms = 0;
        assert!(v
            .validate()
            .unwrap_err()
            .to_string()
            .contains("default 10000"));
        let mut v = super::VictoriaConfig::new("http://vm:8428");
        v.response_bytes_max = 10;
        assert!(v.validate().is_err());
    }
}
