//! The names a tablet may use to reach this Pi, for the server
//! certificate: `<hostname>.local` (what Raspberry Pi OS advertises over
//! mDNS), the hostname, `localhost`, the host's LAN addresses, `127.0.0.1`
//! and `::1`, then `http.tls_names`.
//!
//! Addresses come from `/proc` (std has no interface list, and this keeps
//! `unsafe` and a dependency out): IPv4 from `/proc/net/fib_trie` (the
//! `/32 host LOCAL` entries), IPv6 from `/proc/net/if_inet6` (global scope
//! only: a link-local address needs a zone id no browser URL can carry).
//! Off Linux, or when a file cannot be read, only the fixed names are
//! there.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The names for the server certificate on this host, plus `extra`;
/// lower case, without duplicates, the `.local` name first (it becomes the
/// certificate's common name).
pub fn current(extra: &[String]) -> Vec<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| valid_label(h));
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        addrs.extend(local_ipv4(&trie).into_iter().map(IpAddr::V4));
    }
    if let Ok(inet6) = std::fs::read_to_string("/proc/net/if_inet6") {
        addrs.extend(global_ipv6(&inet6).into_iter().map(IpAddr::V6));
    }
    assemble(host.as_deref(), &addrs, extra)
}

fn assemble(host: Option<&str>, addrs: &BTreeSet<IpAddr>, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    if let Some(host) = host.filter(|h| *h != "localhost") {
        push(format!("{host}.local"));
        push(host.to_string());
    }
    push("localhost".into());
    push(Ipv4Addr::LOCALHOST.to_string());
    push(Ipv6Addr::LOCALHOST.to_string());
    for addr in addrs.iter().filter(|a| !a.is_loopback()) {
        push(addr.to_string());
    }
    for name in extra {
        push(name.clone());
    }
    names
}

/// A hostname that can stand in a certificate as one DNS label.
fn valid_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The host's own IPv4 addresses: in `/proc/net/fib_trie`, an address
/// line (`|-- 192.168.1.20`) followed by `/32 host LOCAL`.
fn local_ipv4(trie: &str) -> BTreeSet<Ipv4Addr> {
    let mut found = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(addr) = line.parse::<Ipv4Addr>() {
            last = Some(addr);
        } else if line.starts_with("/32 host LOCAL") {
            found.extend(last);
        }
    }
    found
}

/// Global-scope addresses from `/proc/net/if_inet6`: 32 hex digits, the
/// interface index, prefix length, scope (`00` global) and flags, name.
fn global_ipv6(table: &str) -> BTreeSet<Ipv6Addr> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hex = fields.next()?;
            let scope = fields.nth(2)?;
            if scope != "00" || hex.len() != 32 {
                return None;
            }
            u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_give_the_lan_addresses() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 192.168.1.0\n        /24 link UNICAST\n     |-- 192.168.1.20\n        /32 host LOCAL\n     |-- 192.168.1.255\n        /32 link BROADCAST\n";
        let v4: Vec<_> = local_ipv4(trie).into_iter().collect();
        assert_eq!(v4, [Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 168, 1, 20)]);
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n20010db8000000000000000000000020 02 40 00 00     eth0\n";
        let v6: Vec<_> = global_ipv6(inet6).into_iter().collect();
        assert_eq!(v6, ["2001:db8::20".parse::<Ipv6Addr>().expect("v6")]);
    }

    #[test]
    fn the_local_name_comes_first_and_nothing_twice() {
        let addrs: BTreeSet<IpAddr> = ["127.0.0.1", "192.168.1.20"]
            .iter()
            .map(|a| a.parse().expect("ip"))
            .collect();
        let names = assemble(
            Some("mesero"),
            &addrs,
            &["mesero.lan".into(), "localhost".into()],
        );
        assert_eq!(
            names,
            [
                "mesero.local",
                "mesero",
                "localhost",
                "127.0.0.1",
                "::1",
                "192.168.1.20",
                "mesero.lan"
            ]
        );
        assert_eq!(
            assemble(Some("localhost"), &BTreeSet::new(), &[])[0],
            "localhost"
        );
        assert!(!valid_label("bad_name") && !valid_label("-x") && valid_label("pi-4"));
    }
}
