//! Who is on the other end of a browser request: the TCP peer, or, behind
//! proxies we trust, the right-most `X-Forwarded-For` address that is not
//! one of them. The left of that header is whatever the client wrote, so
//! only what our own proxies appended is believed.

use std::{net::IpAddr, str::FromStr};

use actix_web::HttpRequest;

/// Addresses and networks (CIDR) of the proxies in front of the service
/// (`TRUSTED_PROXIES`, comma-separated). Empty: the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or network"))?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?} has an invalid prefix length"))?,
            };
            nets.push((addr, bits));
        }
        Ok(Self(nets))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (ip >> shift) == (net >> shift)
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, bits)| in_network(ip, *net, *bits))
    }

    /// The client behind `peer`, given the `X-Forwarded-For` values in the
    /// order they arrived. `None` when a proxy we trust forwarded something
    /// that is not an address (we cannot tell who the client is).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return Some(client);
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            client = hop.parse::<IpAddr>().ok()?.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        Some(client)
    }
}

/// The address of the end user of a browser request (see the module).
pub fn end_user(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    trusted.client(peer, forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("203.0.113.9"), ["198.51.100.1"]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let t: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        // The client wrote a fake first hop; our proxies appended the rest.
        assert_eq!(
            t.client(ip("10.1.2.3"), ["6.6.6.6, 203.0.113.9", "192.0.2.7"]),
            Some(ip("203.0.113.9"))
        );
        // A peer outside the list is believed over any header.
        assert_eq!(
            t.client(ip("198.51.100.4"), ["203.0.113.9"]),
            Some(ip("198.51.100.4"))
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(t.client(ip("10.0.0.1"), ["10.0.0.2"]), Some(ip("10.0.0.2")));
        assert_eq!(t.client(ip("10.0.0.1"), []), Some(ip("10.0.0.1")));
        // A trusted proxy that forwards garbage names no one.
        assert_eq!(t.client(ip("10.0.0.1"), ["unknown"]), None);
    }

    #[test]
    fn networks_match_by_prefix_and_mapped_addresses_as_ipv4() {
        let t: TrustedProxies = "10.0.0.0/8,fd00::/8".parse().unwrap();
        assert!(t.contains(ip("10.255.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("::ffff:10.1.1.1")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        let all: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn a_malformed_list_is_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.internal".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
