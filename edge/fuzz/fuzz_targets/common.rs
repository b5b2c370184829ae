//! The edge's real profiles (`config/profiles/*.toml`) compiled once per fuzz process.

use edge::normalize::profile::Profile;
use edge::normalize::validate::{RateLimit, Validator};
use edge::normalize::Normalizer;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

pub fn normalizer() -> &'static Normalizer {
    static N: OnceLock<Normalizer> = OnceLock::new();
    N.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/profiles");
        // The loader the agent uses: it passes over the Modbus device profiles in the folder.
        let profiles = Profile::load_dir(&dir).expect("the shipped profiles load");
        Normalizer::new(profiles, HashMap::new(), 0)
    })
}

pub fn validator() -> Validator {
    let registered: HashSet<String> = ["MH-0001", "HY-0001", "SL-0003"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Validator::new(registered, 300_000, 0).with_rate_limit(RateLimit {
        reports_per_s_max: 20.0,
        burst_reports_max: 100,
    })
}
