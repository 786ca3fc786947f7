//! Who is asking: the client's address, through the reverse proxies the operator trusts.
//!
//! Per-client limits (access codes, sign-in mail, guest tokens) key on this address. Behind a
//! proxy every connection comes from the proxy, so its `X-Forwarded-For` (or RFC 7239
//! `Forwarded`) header names the client, but only a trusted proxy's header is believed:
//! anyone else could write one. The chain is read from the right, skipping trusted proxies,
//! and the first address that is not one is the client.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;

/// The client's address as far as this instance can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// A key for per-client limits.
    pub fn key(self) -> String {
        format!("ip:{}", self.0)
    }
}

impl<S> FromRequestParts<S> for ClientAddr
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// The client address of a request from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    // From the right: each hop appended the address it received from. The first one that is
    // not a trusted proxy is the client; a chain of only proxies leaves the leftmost.
    let mut client = peer;
    for ip in chain.iter().rev() {
        client = *ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The addresses named by `Forwarded` (preferred) or else `X-Forwarded-For`, left to right.
/// A header that cannot be read is ignored as a whole rather than half believed.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        let mut out = Vec::new();
        for element in forwarded.iter().flat_map(|v| v.split(',')) {
            let Some(node) = element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then_some(value.trim())
            }) else {
                continue;
            };
            match parse_node(node) {
                Some(ip) => out.push(ip),
                None => return Vec::new(),
            }
        }
        return out;
    }
    let mut out = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Vec::new();
        };
        for part in value.split(',') {
            match parse_node(part.trim()) {
                Some(ip) => out.push(ip),
                None => return Vec::new(),
            }
        }
    }
    out
}

/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().expect("network")).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let peer: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(client_ip(peer, &h, &nets(&["127.0.0.1/32"])), peer);
        assert_eq!(client_ip(peer, &h, &[]), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_spoofed_hops_are_skipped() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        // The client wrote a fake hop; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            client_ip(proxy, &h, &nets(&["127.0.0.0/8"])),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        // Two proxies deep.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            client_ip(proxy, &h, &nets(&["127.0.0.0/8", "10.0.0.0/8"])),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn forwarded_is_read_with_ports_and_brackets() {
        let proxy: IpAddr = "::1".parse().expect("ip");
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
        )]);
        assert_eq!(
            client_ip(proxy, &h, &nets(&["::1/128"])),
            "2001:db8:cafe::17".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn garbage_in_the_header_falls_back_to_the_proxy() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(proxy, &h, &nets(&["127.0.0.1/32"])), proxy);
    }
}
