//! The outbound URL guard: webhook and Teams URLs are chosen by users, so before Herald posts
//! to one it checks where the request would really go.
//!
//! [`check_url`] accepts only `http` and `https` URLs, resolves the host, and refuses (unless
//! private targets are allowed, `HERALD_ALLOW_PRIVATE_TARGETS=1`) every address that is
//! loopback, unspecified, private, link-local (instance metadata at 169.254.169.254 included),
//! unique-local, shared (CGNAT), multicast, broadcast, reserved or for documentation, and the
//! IPv4-mapped, -compatible, NAT64 and 6to4 IPv6 spellings of those; IPv6 local-use NAT64 and
//! Teredo addresses are refused outright. Literal IPv4 spellings
//! (`2130706433`, `0177.0.0.1`, `0x7f.0.0.1`) are normalised by the `url` crate's WHATWG parser
//! before the check, so they are caught like `127.0.0.1`. `localhost` and names under it
//! (`x.localhost`) are refused before any lookup.
//!
//! **Pinning.** The answer, [`GuardedUrl`], carries the vetted socket addresses. The caller
//! must connect only to them: with reqwest, `ClientBuilder::resolve_to_addrs(domain, addrs)`
//! for [`GuardedUrl::domain`] (IP literals need nothing), and no redirects. Otherwise a second
//! DNS lookup at connect time could answer differently (DNS rebinding) and reach an address
//! that was never checked.
//!
//! Error texts never contain the URL: Teams and webhook URLs often carry a signature.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// The variable that lets outbound URLs reach loopback and private addresses.
pub const ALLOW_PRIVATE_TARGETS_VAR: &str = "HERALD_ALLOW_PRIVATE_TARGETS";

/// A URL that passed [`check_url`], with the only addresses the caller may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedUrl {
    /// The parsed URL (IPv4 literals in their normal dotted form).
    pub url: Url,
    /// The host name to pin to [`GuardedUrl::addrs`]; `None` when the host is an IP literal.
    pub domain: Option<String>,
    /// The vetted addresses, with the URL's port; never empty.
    pub addrs: Vec<SocketAddr>,
}

/// Why an outbound URL was refused. The texts never repeat the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Not a URL at all.
    #[error("the URL is not valid")]
    Invalid,
    /// A scheme other than `http` or `https`.
    #[error("the URL must use http or https, not {0}")]
    Scheme(String),
    /// No host (or no port for it).
    #[error("the URL has no host")]
    NoHost,
    /// The host name could not be resolved (may be temporary).
    #[error("the URL's host could not be resolved")]
    Unresolved,
    /// The host resolves to an address Herald does not post to.
    #[error(
        "the URL's host resolves to a non-public address ({0}); set HERALD_ALLOW_PRIVATE_TARGETS=1 to allow it"
    )]
    Forbidden(&'static str),
}

impl OutboundError {
    /// Whether trying again later could help (a failed DNS lookup).
    pub fn is_transient(&self) -> bool {
        matches!(self, OutboundError::Unresolved)
    }
}

/// Whether `HERALD_ALLOW_PRIVATE_TARGETS` is `1` (or `true`).
pub fn allow_private_from_env() -> bool {
    std::env::var(ALLOW_PRIVATE_TARGETS_VAR)
        .map(|v| matches!(v.trim(), "1" | "true"))
        .unwrap_or(false)
}

/// Checks `url` and resolves its host with the system's resolver (see the module docs);
/// `allow_private` skips the address check but still requires http(s) and a host that
/// resolves.
pub async fn check_url(url: &str, allow_private: bool) -> Result<GuardedUrl, OutboundError> {
    check_url_with(url, allow_private, |domain, port| async move {
        tokio::net::lookup_host((domain.as_str(), port))
            .await
            .map(Iterator::collect)
    })
    .await
}

/// [`check_url`] with the host name resolved by `resolve` (given the name and the URL's
/// port), so that what a name resolves to can be chosen, e.g. in tests.
pub async fn check_url_with<F, Fut>(
    url: &str,
    allow_private: bool,
    resolve: F,
) -> Result<GuardedUrl, OutboundError>
where
    F: FnOnce(String, u16) -> Fut,
    Fut: Future<Output = std::io::Result<Vec<SocketAddr>>>,
{
    let url = Url::parse(url.trim()).map_err(|_| OutboundError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::Scheme(url.scheme().to_owned()));
    }
    let port = url.port_or_known_default().ok_or(OutboundError::NoHost)?;
    let (domain, addrs) = match url.host() {
        None => return Err(OutboundError::NoHost),
        Some(Host::Ipv4(ip)) => (None, vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(Host::Ipv6(ip)) => (None, vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(Host::Domain(domain)) => {
            // `localhost` and every name under it are loopback (RFC 6761), whatever a
            // resolver says; some resolve `*.localhost` to 127.0.0.1, others not at all.
            if !allow_private && is_localhost_name(domain) {
                return Err(OutboundError::Forbidden("loopback (localhost)"));
            }
            let addrs = resolve(domain.to_owned(), port)
                .await
                .map_err(|_| OutboundError::Unresolved)?;
            (Some(domain.to_owned()), addrs)
        }
    };
    if addrs.is_empty() {
        return Err(OutboundError::Unresolved);
    }
    if !allow_private {
        // One bad address refuses the URL: the caller may not pick among them.
        for addr in &addrs {
            if let Some(kind) = forbidden_kind(addr.ip()) {
                return Err(OutboundError::Forbidden(kind));
            }
        }
    }
    Ok(GuardedUrl { url, domain, addrs })
}

/// Whether `domain` is `localhost` or a name under it (a trailing dot ignored).
fn is_localhost_name(domain: &str) -> bool {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, _, _) => "unspecified or \"this network\" (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local or metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "reserved (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    };
    Some(kind)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d), -compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
    // reach the embedded IPv4 address: judge that one.
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0; 6] {
        // Deprecated since 2006; nothing legitimate is reached this way.
        return forbidden_v4(embedded(s[6], s[7])).or(Some("IPv4-compatible (deprecated)"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    // 6to4 (2002:a.b.c.d::/48) carries an IPv4 address in segments 1 and 2.
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2]));
    }
    // NAT64 for local use (64:ff9b:1::/48, RFC 8215) and Teredo (2001::/32) tunnel to IPv4
    // addresses Herald cannot see; neither is ever a webhook's address.
    if s[..3] == [0x64, 0xff9b, 1] {
        return Some("NAT64 local-use (64:ff9b:1::/48)");
    }
    if s[..2] == [0x2001, 0] {
        return Some("Teredo (2001::/32)");
    }
    let kind = match s[0] {
        0xfc00..=0xfdff => "unique-local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str) -> OutboundError {
        match check_url(url, false).await {
            Err(e) => e,
            Ok(g) => panic!("{url} was accepted: {g:?}"),
        }
    }

    #[tokio::test]
    async fn given_loopback_spellings_then_every_one_is_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/hook",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "https://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://localhost/",
            "http://LOCALHOST:9000/x",
        ] {
            assert!(
                matches!(refused(url).await, OutboundError::Forbidden(_)),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn given_private_and_reserved_ranges_then_each_is_refused() {
        for url in [
            "http://0.0.0.0/",
            "http://0.1.2.3/",
            "http://10.0.0.1/",
            "http://10.255.255.255/",
            "http://100.64.0.1/",
            "http://100.127.255.254/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://192.0.0.8/",
            "http://192.0.2.10/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://198.18.0.1/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:192.168.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fec0::1]/",
            "http://[100::1]/",
            "http://[::8.8.8.8]/",
        ] {
            assert!(
                matches!(refused(url).await, OutboundError::Forbidden(_)),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn given_public_addresses_then_they_pass_with_the_urls_port() {
        for (url, addr) in [
            ("https://8.8.8.8/hook", "8.8.8.8:443"),
            ("http://1.1.1.1:8080/", "1.1.1.1:8080"),
            ("http://172.32.0.1/", "172.32.0.1:80"),
            ("http://100.128.0.1/", "100.128.0.1:80"),
            ("http://192.169.0.1/", "192.169.0.1:80"),
            ("https://[2606:4700::1111]/", "[2606:4700::1111]:443"),
            ("http://[::ffff:8.8.8.8]/", "[::ffff:8.8.8.8]:80"),
        ] {
            let guarded = check_url(url, false)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(guarded.domain, None, "{url}");
            assert_eq!(
                guarded.addrs,
                vec![addr.parse().unwrap_or_else(|e| panic!("{e}"))]
            );
        }
    }

    #[tokio::test]
    async fn given_ipv4_spellings_then_the_url_is_normalised() {
        let guarded = check_url("http://0x7f.0.0.1:81/a?b", true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(guarded.url.as_str(), "http://127.0.0.1:81/a?b");
        let guarded = check_url("http://2130706433/", true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(guarded.url.host_str(), Some("127.0.0.1"));
    }

    #[tokio::test]
    async fn given_private_targets_allowed_then_localhost_passes_pinned_to_its_addresses() {
        let guarded = check_url("http://localhost:9999/hook", true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(guarded.domain.as_deref(), Some("localhost"));
        assert!(!guarded.addrs.is_empty());
        assert!(
            guarded
                .addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 9999)
        );
    }

    #[tokio::test]
    async fn given_other_schemes_or_no_host_then_they_are_refused_without_the_url() {
        let secret = "sig=SeCrEt";
        for url in [
            format!("file:///etc/passwd?{secret}"),
            format!("ftp://8.8.8.8/?{secret}"),
            format!("gopher://8.8.8.8/?{secret}"),
        ] {
            let e = refused(&url).await;
            assert!(matches!(e, OutboundError::Scheme(_)), "{url}: {e}");
            assert!(!e.to_string().contains(secret));
        }
        assert_eq!(refused("not a url").await, OutboundError::Invalid);
        assert_eq!(refused("http://").await, OutboundError::Invalid);
        let e = refused(&format!("http://127.0.0.1/?{secret}")).await;
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!OutboundError::Forbidden("loopback").is_transient());
        assert!(OutboundError::Unresolved.is_transient());
    }

    #[test]
    fn given_the_variable_then_only_1_or_true_allow_private_targets() {
        // Read-only check of the parser: the variable itself is not set in tests (process-wide).
        let parse = |v: &str| matches!(v.trim(), "1" | "true");
        assert!(parse("1") && parse(" true "));
        assert!(!parse("0") && !parse("") && !parse("yes"));
        if std::env::var(ALLOW_PRIVATE_TARGETS_VAR).is_err() {
            assert!(!allow_private_from_env());
        }
    }
}
