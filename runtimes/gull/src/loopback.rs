//! Shared mode: is an argument a URL of this host's own loopback address?
//!
//! Every sandbox's Chromium serves DevTools on a random `127.0.0.1` port of
//! the shared container (`browser.rs`), and its HTTP endpoints (`/json/list`
//! lists tab titles and URLs) answer any local client. A sandbox must not
//! point its browser there. The host is parsed the way a browser parses it
//! (WHATWG URL parsing by the `url` crate), so `2130706433`, `0x7f000001`,
//! `127.1` and `[::ffff:127.0.0.1]` all count as 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::shared::unwrap_url;

/// Whether `arg` (after the normalisation of `shared::unwrap_url`) is a URL
/// whose host is loopback or unspecified. With `bare_hosts` (the argument of
/// a navigating command) a scheme-less `127.0.0.1:9222/json` counts too:
/// agent-browser adds `https://` to it.
pub(crate) fn is_loopback_url(arg: &str, bare_hosts: bool) -> bool {
    let s = unwrap_url(arg);
    if Url::parse(&s).is_ok_and(|u| host_is_loopback(&u)) {
        return true;
    }
    bare_hosts && !s.contains("://") && Url::parse(&format!("https://{s}")).is_ok_and(|u| host_is_loopback(&u))
}

fn host_is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(Host::Ipv4(ip)) => v4_is_local(ip),
        Some(Host::Ipv6(ip)) => v6_is_local(ip),
        // Non-special schemes keep an opaque host: judge it by its text.
        Some(Host::Domain(d)) => name_is_local(d),
        None => false,
    }
}

fn name_is_local(d: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    if d == "localhost" || d.ends_with(".localhost") {
        return true;
    }
    match d.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => v4_is_local(ip),
        Ok(IpAddr::V6(ip)) => v6_is_local(ip),
        Err(_) => false,
    }
}

/// 127.0.0.0/8, and 0.0.0.0/8 (Linux connects `0.0.0.0` to the host).
fn v4_is_local(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.octets()[0] == 0
}

fn v6_is_local(ip: Ipv6Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || ip.to_ipv4_mapped().is_some_and(v4_is_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms_are_recognised() {
        for url in [
            "http://127.0.0.1:9222/json/list",
            "http://localhost:9222/json",
            "HTTP://LOCALHOST./json",
            "http://a.b.localhost/",
            "ws://127.0.0.1:9222/devtools/browser/x",
            "http://127.1:9222/",
            "http://2130706433:9222/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.255.255.254/",
            "http://[::1]:9222/",
            "http://[::]:9222/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:9222/",
            "http://0/",
            "http://user:pw@127.0.0.1/",
            " \thttp://127.0.0.1/",
            "view-source:http://127.0.0.1:9222/json",
            "ht\ntp://127.0.0.1/",
        ] {
            assert!(is_loopback_url(url, false), "{url}");
        }
        for bare in ["127.0.0.1:9222/json/list", "localhost:9222", "[::1]:9222", "2130706433"] {
            assert!(is_loopback_url(bare, true), "{bare}");
            assert!(!is_loopback_url(bare, false), "{bare}");
        }
        for ok in [
            "https://example.com/",
            "http://10.0.0.1/",
            "http://ship:8000/page.html",
            "http://localhost.example.com/",
            "http://mylocalhost/",
            "about:blank",
            "data:text/html,127.0.0.1",
            "hello world",
            "@e1",
            "#main",
            "/workspace/a.png",
        ] {
            assert!(!is_loopback_url(ok, true), "{ok}");
        }
    }
}
