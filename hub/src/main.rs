//! The `hub` binary: `serve`, and the operator commands on the registry (seed import/export,
//! edge credentials, API tokens). Errors exit non-zero with one line naming the file, line and
//! field at fault.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hub::config::HubConfig;
use hub::registry::{seed, RegistryAdmin, Scope};
use hub::serve::{self, Overrides};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Wangge hub: embedded MQTT broker, ingest, time-series storage, shared registry and HTTP API.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about)]
struct Cli {
    /// Config file (TOML). Without one the hub runs on embedded defaults (MQTT :1883,
    /// HTTP :8080, data under ./data).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (registry, time series, dedup state); overrides the config's `data_dir`.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub until SIGINT/SIGTERM.
    Serve {
        /// HTTP listen address, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// MQTT listen address of the embedded broker, e.g. 127.0.0.1:1883.
        #[arg(long, value_name = "ADDR")]
        mqtt: Option<SocketAddr>,
    },
    /// Move a stopped single-node hub's state (registry, events, dedup ledger) into the empty
    /// PostgreSQL of a cluster, in one transaction; prints the rows per table. Not readings.
    Migrate {
        /// The single node's data dir (its `--data-dir`, the hub stopped).
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        /// postgres://user:password@host:port/database (prefer the environment variable).
        #[arg(
            long,
            env = "WANGGE_POSTGRES_URL",
            hide_env_values = true,
            value_name = "URL"
        )]
        to: String,
    },
    /// Seed import/export as CSV (regions, classes, departments, grid_cells, edges, components, sensors).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Edge credentials.
    Edge {
        #[command(subcommand)]
        command: EdgeCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// MQTT credentials of department event consumers (`wangge/v1/events/{department}/#`).
    MqttUser {
        #[command(subcommand)]
        command: MqttUserCommand,
    },
    /// The hub cluster (`[cluster]` in the config): members and the edges each owns.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Members (live, silent or left, heartbeat age), the edges each owns, the leader and
    /// orphaned edges, read from the cluster's PostgreSQL (no running hub needed).
    Status {
        /// Print the same JSON as `GET /api/v1/cluster`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MqttUserCommand {
    /// Issue MQTT credentials for a department. Prints the username (also the only client id
    /// it may use) and then the password on stdout, once; only the password's hash is stored.
    /// It may subscribe to `wangge/v1/events/{department}/#` and nothing else, publish nothing.
    Add {
        #[arg(long)]
        department: String,
    },
    /// Revoke by username: it can no longer log in, and its open connections are closed.
    Revoke { username: String },
    /// List department MQTT users (never their secrets).
    List,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Import DIR/*.csv in one transaction: a bad row fails all of it (`file:line: field: reason`).
    Import { dir: PathBuf },
    /// Write the registry to DIR/*.csv in the import format (no credentials, no tokens).
    Export { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
enum EdgeCommand {
    /// Issue (or re-issue) an edge's secret. Prints it once on stdout; only its hash is stored.
    Add {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        site: Option<String>,
        /// Also write the secret to FILE, mode 0600 (for provisioning the edge box).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Revoke an edge: it can no longer log in nor have batches accepted.
    Revoke { id: String },
    /// The edge's desired configuration from the hub (everything but its identity).
    Config {
        #[command(subcommand)]
        command: EdgeConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EdgeConfigCommand {
    /// Print the desired document (after `#` lines: its version, and what the edge applied).
    Get { id: String },
    /// Store FILE (TOML) as the edge's next version; the hub delivers it sealed to the edge.
    /// Refused, naming the file's line and the field, if it holds the edge's identity, an
    /// unknown top-level key or a sensor not registered to the edge.
    Set {
        id: String,
        file: PathBuf,
        /// The version FILE was made from (0: none yet); refused if it is no longer current.
        #[arg(long, value_name = "N")]
        base_version: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScopeArg {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue an API token. Prints it once on stdout; only its hash is stored.
    Add {
        /// The department the token acts for (optional for admin tokens).
        #[arg(long)]
        department: Option<String>,
        #[arg(long, value_enum)]
        scope: ScopeArg,
    },
    /// Revoke a token by its id (the part between `wgt_` and the dot).
    Revoke { id: String },
}

fn load_config(cli: &Cli) -> anyhow::Result<HubConfig> {
    let mut cfg = match &cli.config {
        Some(path) => HubConfig::load(path)?,
        None => HubConfig::default(),
    };
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    cfg.resolve_paths();
    Ok(cfg)
}

/// The registry for an operator command: the seed import at start is for `serve` only
/// (`registry import` names its directory itself).
fn operator_registry(mut cfg: HubConfig) -> anyhow::Result<std::sync::Arc<dyn RegistryAdmin>> {
    cfg.registry.seed_dir = None;
    match &cfg.cluster {
        // A cluster's registry is PostgreSQL: any member's config reaches it.
        Some(c) => {
            let cluster = hub::cluster::Cluster::connect(c.clone())?;
            serve::open_cluster_registry(&cfg, &cluster)
        }
        None => serve::open_registry(&cfg),
    }
}

/// `hub cluster status`.
fn cluster_status(cfg: &HubConfig, json: bool) -> anyhow::Result<()> {
    let Some(c) = &cfg.cluster else {
        anyhow::bail!("no [cluster] table in the config: this hub runs as a single node");
    };
    let cluster = hub::cluster::Cluster::connect(c.clone())?;
    let mut status = hub::cluster::status::ClusterStatus::of(&cluster)?;
    // Read just now from PostgreSQL by this command.
    status.database_ok = true;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render_text());
    }
    Ok(())
}

/// Logs to stderr, coloured only on a terminal. Without `RUST_LOG`: info and rumqttd's warnings
/// and errors; rumqttd's per-connection chatter is dropped unless `RUST_LOG` names rumqttd
/// (`hub::broker::log_filter`).
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let env = tracing_subscriber::EnvFilter::try_from_default_env();
    let chatter = (!hub::broker::log_filter::asked_for_rumqttd())
        .then_some(hub::broker::log_filter::WithoutConnectionChatter);
    // rumqttd logs every connection at info; its warnings are what matter here.
    let filter = env.unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rumqttd=warn,tokio_postgres=warn")
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(filter)
        .with(chatter)
        .with(fmt)
        .init();
}

fn main() {
    let cli = Cli::parse();
    init_logging();
    if let Err(e) = run(cli) {
        eprintln!("hub: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Data files and secrets this process creates are the hub user's only.
    hub::private_files::restrict_umask();
    let cfg = load_config(&cli)?;
    match cli.command {
        Command::Serve { http, mqtt } => {
            let mut cfg = cfg;
            Overrides {
                data_dir: None,
                http,
                mqtt,
            }
            .apply(&mut cfg);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start the async runtime")?;
            let result = rt.block_on(serve::run(cfg));
            // Blocking workers still in a SQLite call get a bound, not forever.
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            result
        }
        Command::Migrate { from, to } => {
            let sources = hub::migrate_to_pg::Sources::in_data_dir(&from);
            print!("{}", hub::migrate_to_pg::migrate(&sources, &to)?);
            Ok(())
        }
        Command::Registry { command } => {
            let reg = operator_registry(cfg)?;
            match command {
                RegistryCommand::Import { dir } => {
                    let s = seed::import_dir(reg.as_ref(), &dir)?;
                    println!("imported {s}");
                }
                RegistryCommand::Export { dir } => {
                    let s = seed::export_dir(reg.as_ref(), &dir)?;
                    println!("exported {s}");
                }
            }
            Ok(())
        }
        Command::Edge { command } => {
            let reg = operator_registry(cfg)?;
            match command {
                EdgeCommand::Add {
                    id,
                    name,
                    site,
                    out,
                } => {
                    let secret = reg.add_edge(&id, name.as_deref(), site.as_deref())?;
                    if let Some(path) = &out {
                        hub::private_files::write_secret(path, format!("{secret}\n").as_bytes())
                            .with_context(|| format!("write the secret to {}", path.display()))?;
                        eprintln!(
                            "edge {id}: secret written to {} (mode 0600)",
                            path.display()
                        );
                    }
                    eprintln!(
                        "edge {id}: MQTT username {id}, password below (shown once, stored hashed)"
                    );
                    println!("{secret}");
                }
                EdgeCommand::Revoke { id } => {
                    reg.revoke_edge(&id)?;
                    eprintln!("edge {id}: revoked");
                }
                EdgeCommand::Config {
                    command: EdgeConfigCommand::Get { id },
                } => hub::fleet::cli::get(reg.as_ref(), &id)?,
                EdgeCommand::Config {
                    command:
                        EdgeConfigCommand::Set {
                            id,
                            file,
                            base_version,
                        },
                } => hub::fleet::cli::set(reg.as_ref(), &id, &file, base_version)?,
            }
            Ok(())
        }
        Command::Cluster {
            command: ClusterCommand::Status { json },
        } => cluster_status(&cfg, json),
        Command::MqttUser { command } => {
            let reg = operator_registry(cfg)?;
            match command {
                MqttUserCommand::Add { department } => {
                    let (username, secret) = reg.add_mqtt_user(&department)?;
                    eprintln!(
                        "department {department}: MQTT username (and client id) and password \
                         below (shown once, stored hashed); it may subscribe to \
                         wangge/v1/events/{department}/#"
                    );
                    println!("{username}");
                    println!("{secret}");
                }
                MqttUserCommand::Revoke { username } => {
                    reg.revoke_mqtt_user(&username)?;
                    eprintln!("MQTT user {username}: revoked");
                }
                MqttUserCommand::List => {
                    for u in reg.list_mqtt_users()? {
                        println!(
                            "{}\t{}\t{}",
                            u.username,
                            u.department_id,
                            if u.revoked { "revoked" } else { "active" }
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Token { command } => {
            let reg = operator_registry(cfg)?;
            match command {
                TokenCommand::Add { department, scope } => {
                    let scope = match scope {
                        ScopeArg::Read => Scope::Read,
                        ScopeArg::Write => Scope::Write,
                        ScopeArg::Admin => Scope::Admin,
                    };
                    let token = reg.add_token(department.as_deref(), scope)?;
                    eprintln!(
                        "token for {} ({}) below: shown once, stored hashed",
                        department.as_deref().unwrap_or("no department"),
                        scope.name()
                    );
                    println!("{token}");
                }
                TokenCommand::Revoke { id } => {
                    reg.revoke_token(&id)?;
                    eprintln!("token {id}: revoked");
                }
            }
            Ok(())
        }
    }
}
