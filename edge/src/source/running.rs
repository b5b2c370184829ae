//! The sources the agent runs, one task each, keyed by kind and name, so a configuration
//! change restarts only the sources whose settings changed (issue: a remote change must not
//! tear down connectors that did not change).
//!
//! Stopping a source loses nothing: an MQTT source acknowledges a message only once its
//! readings are durable and keeps a persistent session, so the site broker redelivers what
//! was in flight; a serial or Modbus line is simply reopened.

use crate::config::{Config, MqttSource};
use crate::ingest::Ingest;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A running source: what it was started with (its settings' rendering), and its task.
struct Running {
    settings: String,
    task: JoinHandle<()>,
}

/// A source to run: its settings' rendering and how to start it.
struct Wanted {
    settings: String,
    start: Box<dyn FnOnce() -> JoinHandle<()> + Send>,
}

pub struct Sources {
    running: BTreeMap<String, Running>,
    edge_id: String,
    secret: String,
    ingest: Arc<Ingest>,
    /// The embedded site broker's subscription, when the agent runs one (it changes only with
    /// a restart of the agent).
    embedded: Option<MqttSource>,
}

impl Sources {
    /// Starts every source of `cfg`.
    pub fn start(
        cfg: &Config,
        secret: &str,
        ingest: Arc<Ingest>,
        embedded: Option<MqttSource>,
    ) -> Sources {
        let mut s = Sources {
            running: BTreeMap::new(),
            edge_id: cfg.edge.id.clone(),
            secret: secret.to_string(),
            ingest,
            embedded,
        };
        s.update(cfg);
        s
    }

    /// Makes the running sources those of `cfg`: stops the removed and changed ones, starts
    /// the new and changed ones, leaves the rest alone. Returns the keys it (re)started or
    /// stopped, e.g. `serial:A`.
    pub fn update(&mut self, cfg: &Config) -> Vec<String> {
        let mut wanted = self.wanted(cfg);
        let mut touched = Vec::new();
        self.running.retain(|key, r| {
            let keep = wanted.get(key).is_some_and(|w| w.settings == r.settings);
            if keep {
                wanted.remove(key);
            } else {
                r.task.abort();
                // A line that stops running reports nothing down any more.
                self.ingest.metrics.sources_down.forget(key);
                touched.push(key.clone());
            }
            keep
        });
        for (key, w) in wanted {
            if !touched.contains(&key) {
                touched.push(key.clone());
            }
            let task = (w.start)();
            self.running.insert(
                key,
                Running {
                    settings: w.settings,
                    task,
                },
            );
        }
        touched.sort();
        touched
    }

    fn wanted(&self, cfg: &Config) -> BTreeMap<String, Wanted> {
        let mut out = BTreeMap::new();
        let topics = self.ingest.normalizer.topics();
        for src in cfg.mqtt.iter().chain(self.embedded.iter()).cloned() {
            let t = if src.topics.is_empty() {
                topics.clone()
            } else {
                src.topics.clone()
            };
            let (edge_id, secret, ingest) = (
                self.edge_id.clone(),
                self.secret.clone(),
                self.ingest.clone(),
            );
            out.insert(
                format!("mqtt:{}", src.name),
                Wanted {
                    settings: format!("{src:?} {t:?}"),
                    start: Box::new(move || {
                        tokio::spawn(super::mqtt::run(src, edge_id, secret, t, ingest))
                    }),
                },
            );
        }
        // `modbus_lines()` are `modbus` compiled, in the same order.
        for (line, settings) in cfg.modbus_lines().iter().cloned().zip(&cfg.modbus) {
            let ingest = self.ingest.clone();
            out.insert(
                format!("modbus:{}", settings.name),
                Wanted {
                    settings: format!("{settings:?}"),
                    start: Box::new(move || {
                        tokio::spawn(super::modbus::poller::supervise(line, ingest))
                    }),
                },
            );
        }
        for src in cfg.serial.iter().cloned() {
            let ingest = self.ingest.clone();
            out.insert(
                format!("serial:{}", src.name),
                Wanted {
                    settings: format!("{src:?}"),
                    start: Box::new(move || tokio::spawn(super::serial::run(src, ingest))),
                },
            );
        }
        out
    }
}
