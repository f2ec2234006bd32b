//! Which address a call comes from (contract §10, "Precisions"): the connection's peer,
//! or — only when the peer is a configured trusted proxy — the right-most
//! `X-Forwarded-For` hop that is not itself a trusted proxy. Every hop left of that one
//! was written by someone we do not trust, so nothing there is believed: a client cannot
//! pick its own address by sending the header, and behind a proxy one attacker no longer
//! throttles everyone (every call came from the proxy's address before).

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The client address of a request from `peer` with `headers`.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(resolve(peer?, forwarded, trusted))
}

/// The address the chain `peer` ← `forwarded` (header values in order, each a
/// comma-separated list, the nearest hop last) identifies.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop a trusted proxy wrote but we cannot read: the proxy is all we know.
        let Some(ip) = parse_hop(hop.trim()) else {
            return client;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        client = ip;
    }
    client
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, or with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("192.0.2.9"), ["198.51.100.1"].into_iter(), &trusted),
            ip("192.0.2.9")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["198.51.100.1"].into_iter(), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        // The client forged a first hop; the proxies appended the real ones.
        let chain = ["6.6.6.6, 198.51.100.7", "10.1.1.1"];
        assert_eq!(
            resolve(ip("10.0.0.2"), chain.into_iter(), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(
                ip("2001:db8:ffff::1"),
                ["[2001:db8:1::5]:443"].into_iter(),
                &trusted
            ),
            ip("2001:db8:1::5")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["192.0.2.1:4711"].into_iter(), &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn an_all_trusted_or_unreadable_chain_stops_at_the_last_known_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("10.0.0.2"), ["10.9.9.9"].into_iter(), &trusted),
            ip("10.9.9.9")
        );
        assert_eq!(
            resolve(
                ip("10.0.0.2"),
                ["192.0.2.1, garbage, 10.3.3.3"].into_iter(),
                &trusted
            ),
            ip("10.3.3.3")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), std::iter::empty(), &trusted),
            ip("10.0.0.2")
        );
    }
}
