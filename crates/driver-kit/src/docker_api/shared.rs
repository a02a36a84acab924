//! The shared session bridge: one bridge network for every single-container
//! session that cannot forge frames, instead of one network per session.
//!
//! Why: creating and removing a bridge network is the most expensive part of
//! a session start on Docker (a Linux bridge, its iptables chains, and every
//! `iptables` call slows as the rules of the other networks grow); with many
//! sessions starting at once it is about half of the engine's work
//! (`./dev bench`, "100 concurrent create").
//!
//! Why it still keeps sessions apart:
//! - `com.docker.network.bridge.enable_icc=false`: Docker drops traffic
//!   between two containers of the bridge (an iptables rule on frames that
//!   enter and leave it, which `br_netfilter` applies to bridged traffic);
//! - IPv6 off inside the container (`net.ipv6.conf.*.disable_ipv6`): Docker's
//!   rule is IPv4 only, and link-local IPv6 would otherwise pass;
//! - only containers without `NET_RAW` and `NET_ADMIN` join it
//!   ([`eligible`]): ARP or neighbour spoofing needs raw sockets, and a
//!   container without them cannot pose as another's address;
//! - no DNS alias: a session's container name (`ship`) would otherwise
//!   resolve to every session's container.
//!
//! Sessions of several containers reach each other by name, so they keep a
//! network of their own, as does any container granted `NET_RAW` or
//! `NET_ADMIN`. Podman's netavark ignores `enable_icc`: the host enables the
//! shared bridge only on a Docker engine (host/src/driver/docker.rs).

use serde_json::{Value, json};

use crate::spec::{SessionSpec, labels};

/// The label that marks the shared bridge (it belongs to no session).
pub const SHARED_LABEL: &str = "bay.shared_bridge";

/// Whether a session may join the shared bridge: one container, which can
/// neither open raw sockets nor reconfigure its network.
pub fn eligible(spec: &SessionSpec) -> bool {
    let [c] = spec.containers.as_slice() else { return false };
    let s = &c.security;
    let named = |caps: &[String], cap: &str| caps.iter().any(|c| c.eq_ignore_ascii_case(cap) || c.eq_ignore_ascii_case(&format!("CAP_{cap}")));
    let dropped = |cap: &str| named(&s.cap_drop, "ALL") || named(&s.cap_drop, cap);
    let added = |cap: &str| named(&s.cap_add, "ALL") || named(&s.cap_add, cap);
    ["NET_RAW", "NET_ADMIN"].iter().all(|cap| !added(cap)) && dropped("NET_RAW")
}

/// `POST /networks/create` for the shared bridge, on `subnet` when given
/// ([`SubnetPool::shared_block`](super::SubnetPool::shared_block)).
pub fn create_body(name: &str, subnet: Option<&str>) -> Value {
    let mut body = json!({
        "Name": name,
        "Driver": "bridge",
        "CheckDuplicate": true,
        "EnableIPv6": false,
        "Options": { "com.docker.network.bridge.enable_icc": "false" },
        "Labels": { labels::MANAGED: "true", SHARED_LABEL: "true" },
    });
    if let Some(s) = subnet {
        body["IPAM"] = json!({ "Driver": "default", "Config": [{ "Subnet": s }] });
    }
    body
}

/// Whether a network (`GET /networks/{name}`) is a shared bridge as
/// [`create_body`] makes it: one made otherwise (by hand, by another tool)
/// may let containers talk, and is not joined.
pub fn is_shared_bridge(network: &Value) -> bool {
    network["Driver"] == "bridge"
        && network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        && network["Labels"][SHARED_LABEL] == "true"
        && network["EnableIPv6"] != true
}

/// Adapts a container's create body to the shared bridge `net`: IPv6 off,
/// and no DNS alias.
pub fn join(create: &mut Value, net: &str) {
    create["HostConfig"]["Sysctls"] = json!({
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
    });
    create["NetworkingConfig"] = json!({ "EndpointsConfig": { net: {} } });
}
