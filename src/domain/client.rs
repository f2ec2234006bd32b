//! Who a call comes from, as the §10 counters, the hashing queue's fairness and the
//! per-address connection limit count it: an IPv4 address, or an IPv6 client by its /64
//! (one host is handed a whole /64, so counting per /128 gave it 2^64 addresses).

use std::net::{IpAddr, Ipv6Addr};

/// A client's address and the key it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    ip: IpAddr,
    key: String,
}

impl ClientAddress {
    pub fn new(ip: IpAddr) -> Self {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let key = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        };
        ClientAddress { ip, key }
    }

    /// The address itself, as written to the audit trail.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// What it is counted under: the address, or its /64.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        ClientAddress::new(s.parse().unwrap()).key().to_string()
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::1"), "::/64");
    }
}
