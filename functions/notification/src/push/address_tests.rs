//! The address classifier against the special-purpose ranges (as a table
//! and as properties over whole blocks and every embedding of IPv4), and
//! the endpoint check's refusals of form: scheme, userinfo, port.

use super::*;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mapped(v4: Ipv4Addr) -> Ipv6Addr {
    v4.to_ipv6_mapped()
}

fn compatible(v4: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(u32::from(v4)))
}

fn nat64(v4: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(u32::from(v4)))
}

fn six_to_four(v4: Ipv4Addr, rest: u128) -> Ipv6Addr {
    let rest = rest & ((1u128 << 80) - 1);
    Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(u32::from(v4)) << 80) | rest)
}

#[test]
fn the_special_purpose_ranges_are_not_public() {
    for s in [
        // IPv4: the old cases
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        // IPv4: the review's gaps
        "0.1.2.3",
        "100.127.255.255",
        "198.18.0.1",
        "198.19.255.254",
        "192.88.99.1",
        "240.0.0.1",
        "250.1.2.3",
        "239.255.255.250",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        // IPv6
        "::1",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "fec0::1",
        "feff::1",
        "ff02::1",
        "ff0e::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::8.8.8.8",
        "::169.254.169.254",
        "2002:7f00:0001::1",
        "2002:a9fe:a9fe::",
        "2002:0a00:0001:1:2:3:4:5",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001::1",
        "2001:2::1",
        "2001:10::1",
        "2001:db8::1",
        "3fff::1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::169.254.169.254",
        "64:ff9b::10.0.0.1",
        "64:ff9b:1::8.8.8.8",
        "100::1",
        "1::1",
        "4000::1",
    ] {
        assert!(!is_public(ip(s)), "{s} must not be public");
    }
}

#[test]
fn public_unicast_is_public() {
    for s in [
        "8.8.8.8",
        "1.1.1.1",
        "142.250.185.10",
        "100.63.255.255",
        "100.128.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "192.88.98.1",
        "223.255.255.254",
        "2a00:1450:4001::1",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2001:200::1",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:0808:0808::1",
        "3fff:1000::1",
    ] {
        assert!(is_public(ip(s)), "{s} must be public");
    }
}

fn v4_in_a_non_public_block() -> impl Strategy<Value = Ipv4Addr> {
    (0..NON_PUBLIC_V4.len(), any::<u32>()).prop_map(|(i, host)| {
        let (net, len) = NON_PUBLIC_V4[i];
        let host_mask = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
        Ipv4Addr::from((u32::from(net) & !host_mask) | (host & host_mask))
    })
}

proptest! {
    #[test]
    fn every_address_of_a_non_public_v4_block_is_refused_however_spelt(
        v4 in v4_in_a_non_public_block(), rest in any::<u128>()
    ) {
        prop_assert!(!is_public(IpAddr::V4(v4)));
        prop_assert!(!is_public(IpAddr::V6(mapped(v4))));
        prop_assert!(!is_public(IpAddr::V6(nat64(v4))));
        prop_assert!(!is_public(IpAddr::V6(six_to_four(v4, rest))));
    }

    #[test]
    fn an_embedded_v4_is_judged_as_itself(v4 in any::<Ipv4Addr>(), rest in any::<u128>()) {
        let direct = is_public(IpAddr::V4(v4));
        prop_assert_eq!(is_public(IpAddr::V6(mapped(v4))), direct);
        prop_assert_eq!(is_public(IpAddr::V6(nat64(v4))), direct);
        prop_assert_eq!(is_public(IpAddr::V6(six_to_four(v4, rest))), direct);
        prop_assert!(!is_public(IpAddr::V6(compatible(v4))), "::a.b.c.d is deprecated");
    }

    /// std's own predicates (stable ones) as an independent oracle.
    #[test]
    fn what_std_calls_special_is_not_public(v4 in any::<Ipv4Addr>()) {
        if v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_broadcast()
            || v4.is_multicast() || v4.is_documentation() || v4.is_unspecified()
        {
            prop_assert!(!is_public(IpAddr::V4(v4)));
        }
    }

    #[test]
    fn outside_global_unicast_only_an_embedded_public_v4_passes(bits in any::<u128>()) {
        let v6 = Ipv6Addr::from(bits);
        prop_assume!(bits >> 125 != 0b001);
        let embedded = embedded_v4(v6).is_some_and(is_public_v4);
        prop_assert_eq!(is_public(IpAddr::V6(v6)), embedded);
    }

    #[test]
    fn teredo_and_the_ietf_block_are_refused(low in any::<u128>()) {
        let v6 = Ipv6Addr::from((0x2001_u128 << 112) | (low >> 23));
        prop_assert!(!is_public(IpAddr::V6(v6)));
    }

    #[test]
    fn v6_std_special_is_not_public(bits in any::<u128>()) {
        let v6 = Ipv6Addr::from(bits);
        if v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() {
            prop_assert!(!is_public(IpAddr::V6(v6)));
        }
    }
}

#[tokio::test]
async fn endpoints_are_refused_by_form_before_any_lookup() {
    for (url, want) in [
        ("http://example.com/x", EndpointError::NotHttps),
        ("ftp://example.com/x", EndpointError::NotHttps),
        ("not a url", EndpointError::NotHttps),
        ("https://user@example.com/x", EndpointError::UserInfo),
        ("https://user:pw@example.com/x", EndpointError::UserInfo),
        ("https://:pw@example.com/x", EndpointError::UserInfo),
        ("https://example.com:8443/x", EndpointError::Port),
        ("https://example.com:80/x", EndpointError::Port),
        ("https://8.8.8.8:444/x", EndpointError::Port),
    ] {
        assert_eq!(check_endpoint(url, false).await.unwrap_err(), want, "{url}");
    }
}

#[tokio::test]
async fn non_public_hosts_are_refused_however_spelt() {
    for url in [
        "https://127.0.0.1/x",
        "https://127.1/x",
        "https://2130706433/x",
        "https://0x7f.0.0.1/x",
        "https://[::1]/x",
        "https://[::127.0.0.1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[fec0::1]/x",
        "https://[2002:7f00:1::1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
        "https://169.254.169.254/latest",
        "https://198.18.0.1/x",
        "https://localhost/x",
        "https://localhost:443/x",
    ] {
        assert_eq!(
            check_endpoint(url, false).await.unwrap_err(),
            EndpointError::NotPublic,
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_public_literal_passes_with_its_one_address() {
    let (url, addrs) = check_endpoint("https://8.8.8.8/push/1", false)
        .await
        .unwrap();
    assert_eq!(url.as_str(), "https://8.8.8.8/push/1");
    assert_eq!(addrs, vec!["8.8.8.8:443".parse::<SocketAddr>().unwrap()]);
}

#[tokio::test]
async fn an_unresolvable_host_is_told_apart() {
    // RFC 6761 §6.4: `.invalid` never resolves.
    assert_eq!(
        check_endpoint("https://push.invalid/x", false)
            .await
            .unwrap_err(),
        EndpointError::Unresolvable
    );
}

#[tokio::test]
async fn the_test_setting_admits_the_local_push_service() {
    let (_, addrs) = check_endpoint("http://127.0.0.1:9/x", true).await.unwrap();
    assert_eq!(addrs, vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
    assert_eq!(
        check_endpoint("http://u:p@127.0.0.1:9/x", true)
            .await
            .unwrap_err(),
        EndpointError::UserInfo,
        "userinfo is refused even then"
    );
}
