//! Stock MQTT clients (mosquitto_sub / mosquitto_pub from mosquitto-clients) as an attacker or a
//! department consumer would run them, against the hub's broker or an external mosquitto: the
//! test kit's runners with a login.

use std::path::Path;
pub use wangge_testkit::MosquittoSub as Sub;

/// `mosquitto_sub -q 1` as `user` with `client_id` on `filters`.
pub fn sub(port: u16, user: &str, password: &str, client_id: &str, filters: &[&str]) -> Sub {
    sub_with(port, user, password, client_id, filters, &[])
}

/// Like [`sub`], with `extra` mosquitto_sub arguments (e.g. a will).
pub fn sub_with(
    port: u16,
    user: &str,
    password: &str,
    client_id: &str,
    filters: &[&str],
    extra: &[&str],
) -> Sub {
    let login = ["-u", user, "-P", password, "-i", client_id, "-q", "1"];
    Sub::start(port, &[&login[..], extra].concat(), filters)
}

/// One `mosquitto_pub -q 1` of `payload_file` (or "junk") as `user` with client id `user`; true
/// if the broker acknowledged it and it exited 0.
pub fn publish_once(
    port: u16,
    user: &str,
    password: &str,
    topic: &str,
    retain: bool,
    payload_file: Option<&Path>,
) -> bool {
    let file = payload_file.map(|f| f.display().to_string());
    let mut args = vec![
        "-u", user, "-P", password, "-i", user, "-q", "1", "-t", topic,
    ];
    match &file {
        Some(f) => args.extend(["-f", f.as_str()]),
        None => args.extend(["-m", "junk"]),
    }
    if retain {
        args.push("-r");
    }
    wangge_testkit::mosquitto::publish(port, &args)
}
