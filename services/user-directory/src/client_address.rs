//! Who is at the other end of a request: the address the directory relays
//! to the identity provider when it signs an end user in (so that the
//! provider throttles that person, not the directory). The TCP peer, or,
//! behind proxies listed in `TRUSTED_PROXIES`, the right-most address of
//! `X-Forwarded-For` that is not one of them: every address to the left
//! of it was written by the client and proves nothing.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// Addresses and networks (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`) whose
/// `X-Forwarded-For` entries are believed. Empty: none is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR networks.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or CIDR network"))?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => match b.trim().parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("{item:?}: the prefix length must be 0 to {max}")),
                },
            };
            nets.push((addr, bits));
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, bits)| in_network(ip, net, bits))
    }

    /// The end user's address, from the TCP peer and the values of the
    /// `X-Forwarded-For` headers in the order received.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let mut client = peer?.to_canonical();
        if !self.contains(client) {
            return Some(client);
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            // Unreadable: what is left of it is nobody's word; the last
            // trusted hop stands for the client.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        Some(client)
    }

    /// [`client_address`](Self::client_address) of an actix request.
    pub fn of_request(&self, req: &HttpRequest) -> Option<IpAddr> {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        self.client_address(req.peer_addr().map(|a| a.ip()), forwarded)
    }
}

/// `192.0.2.7`, `2001:db8::1`, and the forms with a port some proxies
/// write (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(trusted: &str, peer: &str, forwarded: &[&str]) -> Option<IpAddr> {
        TrustedProxies::parse(trusted)
            .unwrap()
            .client_address(Some(ip(peer)), forwarded.iter().copied())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client("", "203.0.113.9", &["198.51.100.1"]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_address() {
        assert_eq!(
            client("10.0.0.0/8", "203.0.113.9", &["198.51.100.1"]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        // The client wrote the left-most entry itself: it is not believed.
        assert_eq!(
            client(
                "10.0.0.0/8, 192.0.2.7",
                "10.1.2.3",
                &["1.1.1.1, 198.51.100.1", "192.0.2.7"]
            ),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_furthest_one_is_the_client() {
        assert_eq!(
            client("10.0.0.0/8", "10.1.2.3", &["10.9.9.9"]),
            Some(ip("10.9.9.9"))
        );
        assert_eq!(client("10.0.0.0/8", "10.1.2.3", &[]), Some(ip("10.1.2.3")));
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_one() {
        assert_eq!(
            client("10.0.0.0/8", "10.1.2.3", &["198.51.100.1, garbage"]),
            Some(ip("10.1.2.3"))
        );
    }

    #[test]
    fn ports_ipv6_and_mapped_addresses_are_understood() {
        assert_eq!(
            client("10.0.0.0/8", "::ffff:10.1.2.3", &["198.51.100.1:4711"]),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            client("fd00::/8", "fd00::1", &["[2001:db8::5]:443"]),
            Some(ip("2001:db8::5"))
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in ["nonsense", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse(" ").unwrap().is_empty());
        let p = TrustedProxies::parse("0.0.0.0/0").unwrap();
        assert!(p.contains(ip("8.8.8.8")));
        assert!(!p.contains(ip("2001:db8::1")));
    }
}
