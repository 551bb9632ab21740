//! The guard that keeps push endpoints public: a push endpoint is a URL a
//! user hands us, so before anything is sent to it (at registration and
//! again at each send) it must be `https://` on port 443 without userinfo,
//! and every address its host resolves to must be public unicast.
//!
//! "Public" is decided from the IANA special-purpose registries
//! (iana-ipv4-special-registry, iana-ipv6-special-registry), failing
//! closed: an IPv6 address must lie in global unicast 2000::/3, and an
//! address that carries an IPv4 address the network may route to
//! (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by that
//! IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// A lookup that takes longer than this counts as a failed one.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The only port a public push endpoint may use (RFC 8030 §5: push
/// services are reached over HTTPS; every browser's uses 443).
const PUSH_PORT: u16 = 443;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EndpointError {
    #[error("the endpoint must be an https URL")]
    NotHttps,
    #[error("the endpoint must not carry a user name or password")]
    UserInfo,
    #[error("the endpoint must use port 443")]
    Port,
    #[error("the endpoint's host does not resolve")]
    Unresolvable,
    #[error("the endpoint's host resolves to a non-public address")]
    NotPublic,
}

/// IPv4 blocks that are not public unicast, as (network, prefix length).
/// 192.0.0.0/24 is refused whole although two of its /32s are global:
/// no push service lives there.
pub const NON_PUBLIC_V4: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and the broadcast
];

/// Blocks inside global unicast 2000::/3 that are not public.
pub const NON_PUBLIC_V6: [(Ipv6Addr, u8); 3] = [
    // IETF protocol assignments, holding Teredo 2001::/32 (its embedded
    // addresses are obfuscated, so it is refused, not looked into),
    // benchmarking 2001:2::/48 and ORCHID.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),      // documentation (RFC 9637)
];

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Whether `ip` is a public unicast address a push may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC_V4.iter().any(|&block| in_v4(ip, block))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    // Outside 2000::/3 lies nothing public: ::/8 (loopback, unspecified,
    // the deprecated IPv4-compatible ::a.b.c.d), 64:ff9b:1::/48 (local
    // NAT64), fc00::/7 unique-local, fe80::/10 link-local, fec0::/10
    // site-local, ff00::/8 multicast.
    let global_unicast = ip.segments()[0] & 0xe000 == 0x2000;
    global_unicast && !NON_PUBLIC_V6.iter().any(|&block| in_v6(ip, block))
}

/// The IPv4 address a packet to `ip` ends up at, where the network
/// translates: IPv4-mapped ::ffff:a.b.c.d (a dual-stack socket connects
/// over IPv4), NAT64's well-known 64:ff9b::a.b.c.d (RFC 6052), and 6to4
/// 2002:aabb:ccdd::/48 (RFC 3056).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = u128::from(ip);
    if in_v6(ip, (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)) {
        return Some(Ipv4Addr::from(bits as u32));
    }
    if in_v6(ip, (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16)) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// Checks `endpoint`'s form, resolves its host once and checks every
/// address; the caller sends to exactly these addresses. With
/// `allow_private` (tests only) `http://`, any port and any address pass.
pub async fn check_endpoint(
    endpoint: &str,
    allow_private: bool,
) -> Result<(Url, Vec<SocketAddr>), EndpointError> {
    let url = Url::parse(endpoint).map_err(|_| EndpointError::NotHttps)?;
    let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
    if !scheme_ok {
        return Err(EndpointError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::UserInfo);
    }
    let port = url.port_or_known_default().ok_or(EndpointError::NotHttps)?;
    if !allow_private && port != PUSH_PORT {
        return Err(EndpointError::Port);
    }
    let addrs = resolve(url.host_str().ok_or(EndpointError::NotHttps)?, port).await?;
    if !allow_private && !addrs.iter().all(|a| is_public(a.ip())) {
        return Err(EndpointError::NotPublic);
    }
    Ok((url, addrs))
}

/// `host` as the URL spells it: IP literals (IPv6 in brackets; the URL
/// parser has already normalised `127.1` and the like to dotted IPv4) are
/// taken as they are, a name is looked up.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, EndpointError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>();
    let addrs: Vec<SocketAddr> = match literal {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| EndpointError::Unresolvable)?
            .map_err(|_| EndpointError::Unresolvable)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    Ok(addrs)
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
