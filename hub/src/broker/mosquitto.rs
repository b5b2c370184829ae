//! Provisioning an external mosquitto 2.x from the registry: its `password_file` and `acl_file`,
//! rewritten when the registry's credentials change, then mosquitto is told to reload (SIGHUP
//! to the pid in its `pid_file`), which also disconnects clients whose password no longer holds.
//!
//! The rules are the principals' table of [`super::gate::acl`], in mosquitto's terms:
//! - edge E: `write wangge/v1/edges/E/batches`, `write .../E/status`, `read .../E/acks`,
//!   `read .../E/config` (its desired configuration), `write .../E/config-report`;
//! - department user D: `read wangge/v1/events/D/#`;
//! - the hub's own user: read every edge's batches, status and config reports, write acks,
//!   desired configurations and events.
//!
//! mosquitto must run with `use_username_as_clientid true` (a client's id becomes its username,
//! so nobody can take over another's session or the hub's) and `allow_anonymous false`; the
//! operator's starting configuration is in hub/README.md ("External broker"). What mosquitto
//! cannot express (said in SECURITY.md): its `acl_file` checks reads per delivered message, not
//! at SUBSCRIBE (a forbidden subscription is granted but nothing is ever delivered), and it
//! cannot restrict the retain flag per topic.

use crate::registry::{BrokerAccount, BrokerAccountKind, RegistryStore};
use base64::Engine;
use sha2::Sha512;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// PBKDF2 iterations of mosquitto_passwd's `$7$` format (its default).
const PBKDF2_ROUNDS: u32 = 101;

/// The secret in mosquitto's password-file format:
/// `$7$<iterations>$<base64 12-byte salt>$<base64 PBKDF2-HMAC-SHA512, 64 bytes>`.
pub fn password_hash(secret: &str) -> String {
    let salt: [u8; 12] = rand::random();
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(secret.as_bytes(), &salt, PBKDF2_ROUNDS, &mut out);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "$7${PBKDF2_ROUNDS}${}${}",
        b64.encode(salt),
        b64.encode(out)
    )
}

/// The hub's own account on the external broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAccount {
    pub username: String,
    pub broker_hash: String,
}

/// The accounts of every hub of a cluster, each logging in with its own credentials: each hub
/// publishes its own (`publish`) and every provisioner writes them all (`all`).
pub trait HubAccounts: Send + Sync {
    /// Records this hub's account (its broker hash) for its peers' provisioners.
    fn publish(&self, me: &HubAccount) -> Result<(), String>;
    /// Every hub's account, ordered by username.
    fn all(&self) -> Result<Vec<HubAccount>, String>;
}

/// `password_file` lines, one per account (the hubs' first).
pub fn render_passwd(hubs: &[HubAccount], accounts: &[BrokerAccount]) -> String {
    let mut out = String::new();
    for hub in hubs {
        let _ = writeln!(out, "{}:{}", hub.username, hub.broker_hash);
    }
    for a in accounts {
        let _ = writeln!(out, "{}:{}", a.username, a.broker_hash);
    }
    out
}

/// `acl_file` with one block per account (the hubs' first).
pub fn render_acl(hubs: &[HubAccount], accounts: &[BrokerAccount]) -> String {
    let mut out =
        String::from("# Written by the Wangge hub from its registry; edits are overwritten.\n");
    for (i, hub) in hubs.iter().enumerate() {
        let _ = write!(
            out,
            "{}user {}\ntopic read wangge/v1/edges/+/batches\ntopic read wangge/v1/edges/+/status\n\
             topic read wangge/v1/edges/+/config-report\ntopic write wangge/v1/edges/+/acks\n\
             topic write wangge/v1/edges/+/config\ntopic write wangge/v1/events/#\n",
            if i > 0 { "\n" } else { "" },
            hub.username
        );
    }
    for a in accounts {
        let _ = writeln!(out, "\nuser {}", a.username);
        match &a.kind {
            BrokerAccountKind::Edge => {
                let e = &a.username;
                let _ = write!(
                    out,
                    "topic write wangge/v1/edges/{e}/batches\ntopic write wangge/v1/edges/{e}/status\n\
                     topic read wangge/v1/edges/{e}/acks\ntopic read wangge/v1/edges/{e}/config\n\
                     topic write wangge/v1/edges/{e}/config-report\n"
                );
            }
            BrokerAccountKind::Department { department_id } => {
                let _ = writeln!(out, "topic read wangge/v1/events/{department_id}/#");
            }
        }
    }
    out
}

/// Keeps a mosquitto's password and ACL files equal to the registry.
pub struct Provisioner {
    pub dir: PathBuf,
    /// mosquitto's `pid_file`, to signal a reload; without it the files are only written.
    pub pid_file: Option<PathBuf>,
    pub hub: HubAccount,
    /// In a cluster: every hub's account, this one's included (else only `hub`).
    peers: Option<std::sync::Arc<dyn HubAccounts>>,
    last: Option<(Vec<HubAccount>, Vec<BrokerAccount>)>,
}

/// Why provisioning failed (the broker keeps its previous files).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mosquitto pid file {path}: {reason}")]
    Pid { path: PathBuf, reason: String },
    #[error("the cluster's hub accounts: {0}")]
    Peers(String),
}

impl Provisioner {
    pub fn new(dir: PathBuf, pid_file: Option<PathBuf>, hub: HubAccount) -> Provisioner {
        Provisioner {
            dir,
            pid_file,
            hub,
            peers: None,
            last: None,
        }
    }

    /// A cluster member's provisioner: the files carry every member's account (published by
    /// each member for itself), so each hub logs in with its own credentials.
    pub fn with_peers(mut self, peers: std::sync::Arc<dyn HubAccounts>) -> Provisioner {
        self.peers = Some(peers);
        self
    }

    pub fn passwd_path(&self) -> PathBuf {
        self.dir.join("passwd")
    }

    pub fn acl_path(&self) -> PathBuf {
        self.dir.join("acl")
    }

    /// Writes the files if the registry's accounts changed since the last call and signals a
    /// reload; true if it did.
    pub fn sync(&mut self, registry: &dyn RegistryStore) -> Result<bool, ProvisionError> {
        let accounts = registry.broker_accounts()?;
        let hubs = match &self.peers {
            None => vec![self.hub.clone()],
            Some(p) => {
                let mut all = p.all().map_err(ProvisionError::Peers)?;
                // Its own account even before the database shows it.
                if !all.iter().any(|h| h.username == self.hub.username) {
                    all.push(self.hub.clone());
                    all.sort_by(|a, b| a.username.cmp(&b.username));
                }
                all
            }
        };
        let now = (hubs, accounts);
        if self.last.as_ref() == Some(&now) {
            return Ok(false);
        }
        let (hubs, accounts) = &now;
        std::fs::create_dir_all(&self.dir).map_err(|source| ProvisionError::Io {
            path: self.dir.clone(),
            source,
        })?;
        write_private(&self.passwd_path(), &render_passwd(hubs, accounts))?;
        write_private(&self.acl_path(), &render_acl(hubs, accounts))?;
        if let Some(pid_file) = &self.pid_file {
            reload(pid_file)?;
        }
        tracing::info!(accounts = accounts.len(), hubs = hubs.len(), dir = %self.dir.display(),
            "external broker provisioned");
        self.last = Some(now);
        Ok(true)
    }
}

/// Atomically replaces `path` with `text`, mode 0600 (it holds password hashes).
fn write_private(path: &Path, text: &str) -> Result<(), ProvisionError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A name of its own: the members of a cluster on mosquitto's machine provision the same
    // directory, and a shared temp name lets one rename the other's file away.
    let tmp = path.with_extension(format!(
        "tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn reload(pid_file: &Path) -> Result<(), ProvisionError> {
    let err = |reason: String| ProvisionError::Pid {
        path: pid_file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(pid_file).map_err(|e| err(e.to_string()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| err(format!("{:?} is not a pid", text.trim())))?;
    if pid <= 1 {
        return Err(err(format!("refusing to signal pid {pid}")));
    }
    // SAFETY: kill(2) with a positive pid and SIGHUP has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_hash_has_mosquittos_layout() {
        let h = password_hash("s3cret");
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        assert_eq!(parts[3].len(), 16, "12-byte salt in padded base64");
        assert_eq!(parts[4].len(), 88, "64-byte hash in padded base64");
        assert_ne!(password_hash("s3cret"), h, "salted");
    }

    #[test]
    fn each_account_gets_only_its_own_topics() {
        let hub = HubAccount {
            username: "wangge-hub".into(),
            broker_hash: "$7$x".into(),
        };
        let accounts = vec![
            BrokerAccount {
                username: "edge-a".into(),
                kind: BrokerAccountKind::Edge,
                broker_hash: "$7$a".into(),
            },
            BrokerAccount {
                username: "dept.cg.1a2b3c".into(),
                kind: BrokerAccountKind::Department {
                    department_id: "cg".into(),
                },
                broker_hash: "$7$d".into(),
            },
        ];
        let acl = render_acl(std::slice::from_ref(&hub), &accounts);
        assert!(acl.contains("user edge-a\ntopic write wangge/v1/edges/edge-a/batches\n"));
        assert!(acl.contains("topic read wangge/v1/edges/edge-a/acks\n"));
        assert!(acl.contains("user dept.cg.1a2b3c\ntopic read wangge/v1/events/cg/#\n"));
        assert!(!acl.contains("pattern"), "no rule may apply to every user");
        let passwd = render_passwd(std::slice::from_ref(&hub), &accounts);
        assert_eq!(
            passwd,
            "wangge-hub:$7$x\nedge-a:$7$a\ndept.cg.1a2b3c:$7$d\n"
        );
    }
}
