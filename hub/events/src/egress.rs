//! Where webhooks may go: the guard against server-side request forgery (SSRF).
//!
//! A department's write token chooses a webhook URL, and the hub POSTs to it and shows the status
//! code. Without a guard that lets any department make the hub talk to its own loopback services
//! (the admin API, the broker, a local database), to the cloud metadata address 169.254.169.254,
//! or to any host on the district's private networks. So every address the hub would connect to
//! is classified here and
//!
//! - loopback, link-local, unspecified (`0.0.0.0/8`, `::`), multicast, broadcast and reserved
//!   addresses are refused always — also in their IPv4-mapped, IPv4-compatible and NAT64 forms;
//! - private ranges (10/8, 172.16/12, 192.168/16, 100.64/10 CGNAT, 198.18/15, fc00::/7,
//!   fec0::/10) are refused unless the operator allow-lists them (`[events.webhooks] allow`:
//!   CIDRs, or host names whose addresses may then be private);
//! - the one exception to "always" is the loudly named operator switch
//!   `insecure_allow_loopback`, for tests and single-machine demos: it permits loopback (never
//!   link-local, unspecified or metadata addresses).
//!
//! The check runs when a subscription is created (literal IPs and the addresses a name resolves
//! to) and again on every delivery attempt, inside the HTTP client's DNS resolver
//! ([`GuardedResolver`]): the client connects only to the addresses that passed, so a name that
//! resolves to a public address at creation and to 127.0.0.1 later (DNS rebinding) is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why an address is refused; the `reason` label of `wangge_webhook_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
    /// A private range not on the allow list.
    Private,
    /// A redirect answer (3xx): never followed.
    Redirect,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Loopback,
        Refusal::LinkLocal,
        Refusal::Unspecified,
        Refusal::Multicast,
        Refusal::Broadcast,
        Refusal::Reserved,
        Refusal::Private,
        Refusal::Redirect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Loopback => "loopback",
            Refusal::LinkLocal => "link_local",
            Refusal::Unspecified => "unspecified",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::Reserved => "reserved",
            Refusal::Private => "private",
            Refusal::Redirect => "redirect",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Refusal::Loopback => "a loopback address",
            Refusal::LinkLocal => "a link-local address (cloud metadata lives there)",
            Refusal::Unspecified => "an unspecified address",
            Refusal::Multicast => "a multicast address",
            Refusal::Broadcast => "a broadcast address",
            Refusal::Reserved => "a reserved address",
            Refusal::Private => "a private address not on the operator's allow list",
            Refusal::Redirect => "a redirect",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.explain())
    }
}

/// The error the guarded resolver returns; found again in the client's error chain to classify
/// the attempt as `refused_address`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("webhook host {host:?} resolves only to refused addresses ({reason})")]
pub struct RefusedAddress {
    pub host: String,
    pub reason: Refusal,
}

/// What the operator configured as a bad `allow` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    #[error("webhooks.allow: {0:?} is neither a CIDR (10.12.0.0/16) nor a host name")]
    Malformed(String),
    #[error("webhooks.allow: {entry:?} covers {reason}, which is refused always (loopback for tests: insecure_allow_loopback)")]
    AlwaysRefused { entry: String, reason: Refusal },
}

/// An address range `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.12.0.0/16`, `fd00::/8`, or a single address (`/32`, `/128`).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr {
            addr: canonical(addr),
            prefix: if addr.is_ipv4() || canonical(addr).is_ipv6() {
                prefix
            } else {
                // An IPv4-mapped IPv6 CIDR: its prefix counts the 96 mapping bits.
                prefix.saturating_sub(96)
            },
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`) is judged as that IPv4 address: `[::ffff:127.0.0.1]` is loopback.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let o = v6.octets();
            let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            // `::a.b.c.d` (deprecated compatible form), but not `::` and `::1` themselves.
            if s[..6] == [0; 6] && !(s[6] == 0 && (s[7] == 0 || s[7] == 1)) {
                return IpAddr::V4(embedded);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(embedded);
            }
            ip
        }
        v4 => v4,
    }
}

/// The class of an address: `Err(refusal)` for the always-refused classes, `Ok(true)` when it is
/// private (refused unless allow-listed), `Ok(false)` when public.
fn classify(ip: IpAddr) -> Result<bool, Refusal> {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Err(Refusal::Loopback)
            } else if a.is_link_local() {
                Err(Refusal::LinkLocal)
            } else if o[0] == 0 {
                // 0.0.0.0/8 "this network": Linux connects 0.0.0.0 to the local host.
                Err(Refusal::Unspecified)
            } else if a.is_broadcast() {
                Err(Refusal::Broadcast)
            } else if a.is_multicast() {
                Err(Refusal::Multicast)
            } else if o[0] >= 240 {
                Err(Refusal::Reserved)
            } else {
                let private = a.is_private()
                    || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 CGNAT
                    || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking, used as LAN
                    || (o[0] == 192 && o[1] == 0 && o[2] == 0); // 192.0.0/24 protocol assignments
                Ok(private)
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a == Ipv6Addr::LOCALHOST {
                Err(Refusal::Loopback)
            } else if a.is_unspecified() {
                Err(Refusal::Unspecified)
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Err(Refusal::LinkLocal)
            } else if (s[0] & 0xff00) == 0xff00 {
                Err(Refusal::Multicast)
            } else {
                // fc00::/7 unique local, fec0::/10 the deprecated site-local.
                Ok((s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0)
            }
        }
    }
}

/// The operator's policy: allow list and the loopback switch.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    nets: Vec<Cidr>,
    /// Lower-case, without a trailing dot.
    hosts: Vec<String>,
    insecure_allow_loopback: bool,
    metrics: Arc<EgressMetrics>,
}

impl Egress {
    /// Builds the policy from `[events.webhooks] allow` and `insecure_allow_loopback`. An entry
    /// that would allow an always-refused range is an error, so a config cannot pretend to.
    pub fn new(allow: &[String], insecure_allow_loopback: bool) -> Result<Egress, AllowError> {
        let mut e = Egress {
            insecure_allow_loopback,
            ..Egress::default()
        };
        for entry in allow {
            let t = entry.trim();
            if t.contains('/') || t.parse::<IpAddr>().is_ok() {
                let c = Cidr::parse(t).ok_or_else(|| AllowError::Malformed(entry.clone()))?;
                if let Err(reason) = classify(c.addr) {
                    return Err(AllowError::AlwaysRefused {
                        entry: entry.clone(),
                        reason,
                    });
                }
                e.nets.push(c);
            } else if is_host_name(t) {
                e.hosts.push(normal_host(t));
            } else {
                return Err(AllowError::Malformed(entry.clone()));
            }
        }
        Ok(e)
    }

    pub fn insecure_allow_loopback(&self) -> bool {
        self.insecure_allow_loopback
    }

    pub fn metrics(&self) -> &Arc<EgressMetrics> {
        &self.metrics
    }

    /// Whether the hub may connect to `ip` for a URL whose host is `host` (a name, or the
    /// address itself).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        match classify(ip) {
            Err(Refusal::Loopback) if self.insecure_allow_loopback => Ok(()),
            Err(r) => Err(r),
            Ok(false) => Ok(()),
            Ok(true) => {
                let named = self.hosts.iter().any(|h| *h == normal_host(host));
                if named || self.nets.iter().any(|n| n.contains(ip)) {
                    Ok(())
                } else {
                    Err(Refusal::Private)
                }
            }
        }
    }

    /// The addresses of `addrs` the hub may connect to for `host`; the first refusal if none.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let mut ok = Vec::new();
        let mut first = None;
        for a in addrs {
            match self.check(host, a.ip()) {
                Ok(()) => ok.push(a),
                Err(r) => {
                    first.get_or_insert(r);
                }
            }
        }
        match (ok.is_empty(), first) {
            (false, _) => Ok(ok),
            (true, Some(r)) => Err(r),
            // Nothing resolved at all: treated as refused (reserved), never as "allowed".
            (true, None) => Err(Refusal::Reserved),
        }
    }
}

fn normal_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn is_host_name(h: &str) -> bool {
    let h = h.trim_end_matches('.');
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Counters behind `wangge_webhook_refused_total{stage,reason}`.
#[derive(Debug, Default)]
pub struct EgressMetrics {
    /// [subscribe, deliver] × Refusal::ALL.
    counts: [[AtomicU64; 8]; 2],
}

/// Where a refusal happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Subscribe,
    Deliver,
}

impl EgressMetrics {
    pub fn count(&self, stage: Stage, reason: Refusal) {
        let s = match stage {
            Stage::Subscribe => 0,
            Stage::Deliver => 1,
        };
        let r = Refusal::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        self.counts[s][r].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, stage: Stage, reason: Refusal) -> u64 {
        let s = usize::from(stage == Stage::Deliver);
        let r = Refusal::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        self.counts[s][r].load(Ordering::Relaxed)
    }

    /// Prometheus text.
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP wangge_webhook_refused_total Webhook targets refused by the SSRF guard, by stage and reason.\n");
        out.push_str("# TYPE wangge_webhook_refused_total counter\n");
        for (stage, name) in [(Stage::Subscribe, "subscribe"), (Stage::Deliver, "deliver")] {
            for r in Refusal::ALL {
                let _ = writeln!(
                    out,
                    "wangge_webhook_refused_total{{stage=\"{name}\",reason=\"{}\"}} {}",
                    r.name(),
                    self.get(stage, r)
                );
            }
        }
    }
}

/// The webhook client's DNS resolver: resolves with the system resolver, keeps only the
/// addresses [`Egress::check`] allows, and hands exactly those to the connector, so what is
/// checked is what is connected to.
pub struct GuardedResolver {
    pub egress: Egress,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.egress.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            match egress.filter(&host, addrs) {
                Ok(ok) => Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs),
                Err(reason) => Err(Box::new(RefusedAddress { host, reason })
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// Why a subscription URL is refused at creation (the API answers 422 naming `url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not an http(s) URL with a host")]
    Malformed,
    #[error("host {0:?} does not resolve")]
    Unresolvable(String),
    #[error("host {host:?} is {reason}")]
    Address { host: String, reason: Refusal },
}

impl Egress {
    /// The creation-time check: a literal address is judged as is; a name by every address it
    /// resolves to now (any refused address refuses the URL: a name that mixes a public and a
    /// loopback address is a rebinding setup). Resolution is bounded by `timeout`.
    pub async fn check_url(
        &self,
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<(), UrlRefused> {
        let u = reqwest::Url::parse(url).map_err(|_| UrlRefused::Malformed)?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(UrlRefused::Malformed);
        }
        let refuse = |host: &str, reason| {
            self.metrics.count(Stage::Subscribe, reason);
            UrlRefused::Address {
                host: host.to_string(),
                reason,
            }
        };
        let host = u.host_str().ok_or(UrlRefused::Malformed)?;
        if let Some(ip) = literal_ip(host) {
            return self.check(host, ip).map_err(|r| refuse(host, r));
        }
        let d = host.to_string();
        let looked_up =
            tokio::time::timeout(timeout, tokio::net::lookup_host((d.clone(), 0))).await;
        let addrs: Vec<SocketAddr> = match looked_up {
            Ok(Ok(a)) => a.collect(),
            _ => return Err(UrlRefused::Unresolvable(d)),
        };
        if addrs.is_empty() {
            return Err(UrlRefused::Unresolvable(d));
        }
        for a in &addrs {
            self.check(&d, a.ip()).map_err(|r| refuse(&d, r))?;
        }
        Ok(())
    }

    /// The delivery-time check of a URL's literal address (names are checked by the resolver).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        let r = match url.host_str() {
            None => Err(Refusal::Reserved),
            Some(h) => match literal_ip(h) {
                Some(ip) => self.check(h, ip),
                None => Ok(()),
            },
        };
        if let Err(reason) = r {
            self.metrics.count(Stage::Deliver, reason);
        }
        r
    }
}

/// The address of a URL host that is a literal (`10.0.0.1`, `[::1]`); the URL parser has
/// already normalised the odd IPv4 spellings (`2130706433`, `0x7f.1`) to dotted form.
fn literal_ip(host: &str) -> Option<IpAddr> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn always_refused_classes_including_mapped_forms() {
        let e = Egress::new(&[], false).unwrap();
        for (a, r) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.0.9", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::127.0.0.1", Refusal::Loopback),
            ("64:ff9b::7f00:1", Refusal::Loopback),
            ("169.254.169.254", Refusal::LinkLocal),
            ("::ffff:169.254.169.254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("febf::1", Refusal::LinkLocal),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("::ffff:0.0.0.0", Refusal::Unspecified),
            ("224.0.0.1", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Broadcast),
            ("240.0.0.1", Refusal::Reserved),
        ] {
            assert_eq!(e.check("", ip(a)), Err(r), "{a}");
        }
        // The loopback switch opens loopback only.
        let lo = Egress::new(&[], true).unwrap();
        assert_eq!(lo.check("", ip("127.0.0.1")), Ok(()));
        assert_eq!(lo.check("", ip("::1")), Ok(()));
        assert_eq!(lo.check("", ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(lo.check("", ip("169.254.169.254")), Err(Refusal::LinkLocal));
        assert_eq!(lo.check("", ip("0.0.0.0")), Err(Refusal::Unspecified));
        assert_eq!(lo.check("", ip("10.0.0.1")), Err(Refusal::Private));
    }

    #[test]
    fn private_ranges_need_the_allow_list_and_public_ones_do_not() {
        let e = Egress::new(&[], false).unwrap();
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "fd12::1",
            "fc00::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(e.check("", ip(a)), Err(Refusal::Private), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "1.1.1.1",
        ] {
            assert_eq!(e.check("", ip(a)), Ok(()), "{a}");
        }
        let allow =
            Egress::new(&["10.12.0.0/16".into(), "Platform.Example.".into()], false).unwrap();
        assert_eq!(allow.check("", ip("10.12.3.4")), Ok(()));
        assert_eq!(allow.check("", ip("::ffff:10.12.3.4")), Ok(()));
        assert_eq!(allow.check("", ip("10.13.0.1")), Err(Refusal::Private));
        assert_eq!(allow.check("platform.example", ip("192.168.9.9")), Ok(()));
        assert_eq!(
            allow.check("other.example", ip("192.168.9.9")),
            Err(Refusal::Private)
        );
        // A name on the allow list never opens the always-refused classes.
        assert_eq!(
            allow.check("platform.example", ip("127.0.0.1")),
            Err(Refusal::Loopback)
        );
        assert_eq!(
            allow.check("platform.example", ip("169.254.169.254")),
            Err(Refusal::LinkLocal)
        );
    }

    #[test]
    fn the_allow_list_cannot_name_an_always_refused_range() {
        for bad in [
            "127.0.0.0/8",
            "169.254.0.0/16",
            "0.0.0.0/0",
            "::1",
            "fe80::/10",
        ] {
            assert!(
                matches!(
                    Egress::new(&[bad.into()], false),
                    Err(AllowError::AlwaysRefused { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["10.0.0.0/33", "not a host", "10.0.0.0/x", ""] {
            assert!(
                matches!(
                    Egress::new(&[bad.into()], false),
                    Err(AllowError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cidr_prefixes_match_bit_by_bit() {
        let c = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(c.contains(ip("172.31.1.1")));
        assert!(!c.contains(ip("172.32.0.0")));
        let c = Cidr::parse("fd00:1::/32").unwrap();
        assert!(c.contains(ip("fd00:1:ffff::1")));
        assert!(!c.contains(ip("fd00:2::1")));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(!Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.2")));
    }
}
