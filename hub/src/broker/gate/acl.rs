//! Who may do what on the hub's broker: the principals of MQTT and their topic rules.
//!
//! This table is the contract (SECURITY.md "Principals"); the gate applies it to every CONNECT,
//! SUBSCRIBE and PUBLISH (wills and retained messages included), and the external-broker
//! provisioning will write the same rules into mosquitto. Pure functions, no I/O.

use protocol::uplink::topics;

/// Client ids the hub's own links use on the broker. Nobody from outside may take them: a
/// CONNECT with a client id the broker already has disconnects the older connection (MQTT
/// 3.1.1 §3.1.4), so a taken hub id would be a district-wide outage.
pub const HUB_CLIENT_ID_PREFIX: &str = "wangge-hub";

/// Usernames of department MQTT consumers start with this, and no edge id may (`hub edge add`
/// refuses it), so the two kinds of MQTT principal never share a name. (No ':' in it: mosquitto's
/// password file splits a line at the first ':'.)
pub const DEPARTMENT_USER_PREFIX: &str = "dept.";

/// Someone logged in to the hub's broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttPrincipal {
    /// Edge box `edge_id`: username = client id = edge id.
    Edge { edge_id: String },
    /// A department's event consumer: username = client id, issued by `hub mqtt-user add`.
    Department {
        username: String,
        department_id: String,
    },
}

impl MqttPrincipal {
    /// The MQTT username (and the only client id this principal may use).
    pub fn username(&self) -> &str {
        match self {
            MqttPrincipal::Edge { edge_id } => edge_id,
            MqttPrincipal::Department { username, .. } => username,
        }
    }

    /// Whether this principal may publish on `topic` (with `retain`). Wills are publishes too.
    pub fn may_publish(&self, topic: &str, retain: bool) -> bool {
        match self {
            MqttPrincipal::Edge { edge_id } => {
                let status = topics::status(edge_id);
                if topic == status {
                    return true; // its status is retained by design
                }
                // Batches and reports on the hub's desired configuration, never retained.
                !retain
                    && (topic == topics::batches(edge_id)
                        || topic == topics::config_report(edge_id))
            }
            MqttPrincipal::Department { .. } => false,
        }
    }

    /// Whether this principal may subscribe to `filter`.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        match self {
            MqttPrincipal::Edge { edge_id } => {
                filter == topics::acks(edge_id) || filter == topics::config(edge_id)
            }
            MqttPrincipal::Department { department_id, .. } => {
                // Anything inside its own literal subtree; the department level itself is
                // literal, so no wildcard can reach a sibling department.
                let root = format!("wangge/v1/events/{department_id}/");
                filter
                    .strip_prefix(&root)
                    .is_some_and(|rest| !rest.is_empty() && valid_filter_tail(rest))
            }
        }
    }
}

/// A filter tail is valid MQTT: `#` only as the last whole level, `+` only as a whole level.
fn valid_filter_tail(rest: &str) -> bool {
    let levels: Vec<&str> = rest.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains(['#', '+']),
    })
}

/// Whether `client_id` may be used by `principal`: only its own username.
pub fn client_id_allowed(principal: &MqttPrincipal, client_id: &str) -> bool {
    client_id == principal.username() && !client_id.starts_with(HUB_CLIENT_ID_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: &str) -> MqttPrincipal {
        MqttPrincipal::Edge { edge_id: id.into() }
    }
    fn dept(id: &str) -> MqttPrincipal {
        MqttPrincipal::Department {
            username: format!("dept.{id}.1"),
            department_id: id.into(),
        }
    }

    #[test]
    fn an_edge_publishes_only_its_own_batches_and_status() {
        let a = edge("edge-a");
        assert!(a.may_publish("wangge/v1/edges/edge-a/batches", false));
        assert!(a.may_publish("wangge/v1/edges/edge-a/status", true));
        assert!(!a.may_publish("wangge/v1/edges/edge-a/batches", true));
        assert!(!a.may_publish("wangge/v1/edges/edge-b/batches", false));
        assert!(!a.may_publish("wangge/v1/edges/edge-b/status", true));
        assert!(!a.may_publish("wangge/v1/edges/edge-a/acks", false));
        assert!(a.may_publish("wangge/v1/edges/edge-a/config-report", false));
        assert!(!a.may_publish("wangge/v1/edges/edge-a/config-report", true));
        assert!(!a.may_publish("wangge/v1/edges/edge-b/config-report", false));
        assert!(!a.may_publish("wangge/v1/edges/edge-a/config", true));
        assert!(!a.may_publish("wangge/v1/edges/edge-b/config", false));
        assert!(!a.may_publish("wangge/v1/events/cg/fire.smoke", false));
        assert!(!a.may_publish("anything/else", false));
        assert!(!dept("cg").may_publish("wangge/v1/events/cg/x", false));
    }

    #[test]
    fn an_edge_subscribes_only_to_its_own_acks() {
        let a = edge("edge-a");
        assert!(a.may_subscribe("wangge/v1/edges/edge-a/acks"));
        assert!(a.may_subscribe("wangge/v1/edges/edge-a/config"));
        for f in [
            "wangge/v1/edges/edge-b/config",
            "wangge/v1/edges/+/config",
            "wangge/v1/edges/edge-b/acks",
            "wangge/v1/edges/+/acks",
            "wangge/v1/edges/edge-a/#",
            "wangge/v1/edges/+/batches",
            "wangge/v1/events/#",
            "#",
            "$share/g/wangge/v1/edges/edge-a/acks",
        ] {
            assert!(!a.may_subscribe(f), "{f}");
        }
    }

    #[test]
    fn a_department_subscribes_only_inside_its_own_subtree() {
        let cg = dept("cg");
        assert!(cg.may_subscribe("wangge/v1/events/cg/#"));
        assert!(cg.may_subscribe("wangge/v1/events/cg/fire.smoke"));
        assert!(cg.may_subscribe("wangge/v1/events/cg/+"));
        for f in [
            "wangge/v1/events/#",
            "wangge/v1/events/+/fire.smoke",
            "wangge/v1/events/cgx/#",
            "wangge/v1/events/sw/#",
            "wangge/v1/events/cg",
            "wangge/v1/events/cg/",
            "wangge/v1/events/cg/#/x",
            "wangge/v1/events/cg/a#",
            "wangge/v1/edges/+/batches",
            "#",
        ] {
            assert!(!cg.may_subscribe(f), "{f}");
        }
    }

    #[test]
    fn client_ids_are_bound_to_the_username_and_hub_ids_are_reserved() {
        assert!(client_id_allowed(&edge("edge-a"), "edge-a"));
        assert!(!client_id_allowed(&edge("edge-a"), "edge-b"));
        assert!(!client_id_allowed(&edge("edge-a"), ""));
        assert!(!client_id_allowed(
            &edge("wangge-hub-ingest"),
            "wangge-hub-ingest"
        ));
        assert!(client_id_allowed(&dept("cg"), "dept.cg.1"));
    }
}
