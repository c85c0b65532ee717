//! Which addresses a user-supplied URL may reach. The lists follow Svix's `is_allowed()` (see
//! reliability-and-crates.md A3.2) plus the IPv6 forms that embed an IPv4 address, because a blocked
//! IPv4 address must stay blocked however it is spelled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Refused IPv4 networks, first match wins (so the broadcast address is named before 240/4).
pub(crate) const BLOCKED_V4: &[(Ipv4Net, &str)] = &[
    // 0.0.0.0 connects to the local host on Linux.
    (v4(0, 0, 0, 0, 8), "a \"this network\" address"),
    (v4(10, 0, 0, 0, 8), "a private address"),
    (
        v4(100, 64, 0, 0, 10),
        "a shared (carrier-grade NAT) address",
    ),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    // Cloud metadata services (169.254.169.254) live here.
    (v4(169, 254, 0, 0, 16), "a link-local address"),
    (v4(172, 16, 0, 0, 12), "a private address"),
    (v4(192, 0, 0, 0, 24), "an IETF protocol assignment address"),
    (v4(192, 0, 2, 0, 24), "a documentation address"),
    (v4(192, 168, 0, 0, 16), "a private address"),
    (v4(198, 18, 0, 0, 15), "a benchmarking address"),
    (v4(198, 51, 100, 0, 24), "a documentation address"),
    (v4(203, 0, 113, 0, 24), "a documentation address"),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v4(240, 0, 0, 0, 4), "a reserved address"),
];

/// Refused IPv6 networks, first match wins. IPv4-mapped addresses never get here: they are
/// canonicalised to IPv4 first.
pub(crate) const BLOCKED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "the unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
    // Deprecated IPv4-compatible addresses (::a.b.c.d); nothing public uses them.
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "an IPv4-compatible address",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "a discard-only address",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "a unique local (private) address",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "a link-local address",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "a site-local address",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "a documentation address",
    ),
];

/// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that the translator or relay
/// connects to. They are judged by that address rather than refused outright, because IPv6-only
/// clusters with DNS64 reach every public IPv4 host through 64:ff9b::/96.
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// Whether a user-supplied URL may reach `ip` without an operator allow-list entry.
pub fn is_public(ip: IpAddr) -> bool {
    blocked_reason(ip).is_none()
}

/// Why `ip` is refused ("a loopback address", ...), or `None` for a public address.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(ip) => blocked_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(embedded) = embedded_v4(ip) {
                return blocked_v4(embedded);
            }
            BLOCKED_V6
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, reason)| *reason)
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    BLOCKED_V4
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, reason)| *reason)
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    if NAT64.contains(&ip) {
        // The low 32 bits; truncation is the point.
        Some(Ipv4Addr::from_bits(bits as u32))
    } else if SIX_TO_FOUR.contains(&ip) {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn refuses_each_range_with_its_reason() {
        let cases = [
            ("0.0.0.0", "a \"this network\" address"),
            ("0.255.1.2", "a \"this network\" address"),
            ("10.0.0.1", "a private address"),
            ("172.16.0.1", "a private address"),
            ("172.31.255.255", "a private address"),
            ("192.168.1.1", "a private address"),
            ("127.0.0.1", "a loopback address"),
            ("127.255.255.254", "a loopback address"),
            ("169.254.169.254", "a link-local address"),
            ("255.255.255.255", "the broadcast address"),
            ("192.0.2.1", "a documentation address"),
            ("198.51.100.7", "a documentation address"),
            ("203.0.113.9", "a documentation address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("100.127.255.255", "a shared (carrier-grade NAT) address"),
            ("192.0.0.8", "an IETF protocol assignment address"),
            ("198.18.0.1", "a benchmarking address"),
            ("198.19.255.255", "a benchmarking address"),
            ("240.0.0.1", "a reserved address"),
            ("224.0.0.251", "a multicast address"),
            ("239.255.255.250", "a multicast address"),
            ("::1", "a loopback address"),
            ("::", "the unspecified address"),
            ("::7f00:1", "an IPv4-compatible address"),
            ("ff02::1", "a multicast address"),
            ("fc00::1", "a unique local (private) address"),
            ("fd12:3456::1", "a unique local (private) address"),
            ("fe80::1", "a link-local address"),
            ("febf::1", "a link-local address"),
            ("fec0::1", "a site-local address"),
            ("2001:db8::1", "a documentation address"),
            ("100::1", "a discard-only address"),
            // IPv4-mapped, NAT64 and 6to4 spellings of blocked IPv4 addresses.
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:10.1.2.3", "a private address"),
            ("::ffff:169.254.169.254", "a link-local address"),
            ("::ffff:0.0.0.0", "a \"this network\" address"),
            ("64:ff9b::7f00:1", "a loopback address"),
            ("64:ff9b::a9fe:a9fe", "a link-local address"),
            ("2002:c0a8:0101::1", "a private address"),
        ];
        for (addr, reason) in cases {
            assert_eq!(blocked_reason(ip(addr)), Some(reason), "{addr}");
            assert!(!is_public(ip(addr)), "{addr}");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.255.255",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(addr)), "{addr}");
        }
    }

    /// Any address of any blocked IPv4 network.
    fn blocked_v4_addr() -> impl Strategy<Value = Ipv4Addr> {
        (0..BLOCKED_V4.len(), any::<u32>()).prop_map(|(i, noise)| {
            let (net, _) = BLOCKED_V4[i];
            let host = noise & u32::from(net.hostmask());
            Ipv4Addr::from_bits(net.network().to_bits() | host)
        })
    }

    proptest! {
        #[test]
        fn every_address_of_a_blocked_v4_range_is_refused(addr in blocked_v4_addr()) {
            let bits = u128::from(addr.to_bits());
            let nat64 = Ipv6Addr::from_bits(NAT64.network().to_bits() | bits);
            let six_to_four = Ipv6Addr::from_bits(SIX_TO_FOUR.network().to_bits() | bits << 80);
            for spelling in [
                IpAddr::V4(addr),
                IpAddr::V6(addr.to_ipv6_mapped()),
                IpAddr::V6(nat64),
                IpAddr::V6(six_to_four),
            ] {
                prop_assert!(!is_public(spelling), "{}", spelling);
            }
        }

        #[test]
        fn every_address_of_a_blocked_v6_range_is_refused(i in 0..BLOCKED_V6.len(), noise in any::<u128>()) {
            let (net, _) = BLOCKED_V6[i];
            let host = noise & u128::from(net.hostmask());
            let addr = Ipv6Addr::from_bits(net.network().to_bits() | host);
            prop_assert!(!is_public(IpAddr::V6(addr)), "{}", addr);
        }

        #[test]
        fn mapped_addresses_are_judged_like_their_ipv4(bits in any::<u32>()) {
            let addr = Ipv4Addr::from_bits(bits);
            prop_assert_eq!(
                blocked_reason(IpAddr::V4(addr)),
                blocked_reason(IpAddr::V6(addr.to_ipv6_mapped()))
            );
        }
    }
}
