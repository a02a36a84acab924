//! Subnets for session networks.
//!
//! Every session gets a network of its own. Left to itself, an engine carves
//! each new bridge network out of its default address pools (Docker: /16s
//! of 172.17–31.x and /20s of 192.168.x), which run out after about thirty
//! networks. Sessions need a handful of addresses, so Bay hands out small
//! subnets (a /28 holds 14 hosts) from a pool of its own: thousands of
//! sessions fit in one /16. A session's first candidate is derived from its
//! id, so concurrent launches rarely collide; on a collision the engine
//! refuses the overlap and the launch tries the next candidate.

use std::net::Ipv4Addr;

/// A pool of equally sized IPv4 subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    base: u32,
    pool_prefix: u8,
    prefix: u8,
}

impl SubnetPool {
    /// Parses `10.213.0.0/16` and the size of each session's subnet (`28`).
    pub fn parse(pool: &str, prefix: u8) -> Result<SubnetPool, String> {
        let (addr, len) = pool.split_once('/').ok_or_else(|| format!("{pool:?}: expected an IPv4 CIDR like 10.213.0.0/16"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{pool:?}: {e}"))?;
        let pool_prefix: u8 = len.parse().map_err(|_| format!("{pool:?}: invalid prefix length"))?;
        if pool_prefix > 30 || !(pool_prefix..=30).contains(&prefix) {
            return Err(format!("{pool:?}: session subnets /{prefix} must fit in the pool and be at most /30"));
        }
        let base = u32::from(addr) & mask(pool_prefix);
        Ok(SubnetPool { base, pool_prefix, prefix })
    }

    /// How many session subnets the pool holds.
    pub fn len(&self) -> u64 {
        1u64 << (self.prefix - self.pool_prefix)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th subnet (modulo the pool size), as CIDR text.
    pub fn subnet(&self, i: u64) -> String {
        let i = (i % self.len()) as u32;
        let addr = self.base + (i << (32 - self.prefix));
        format!("{}/{}", Ipv4Addr::from(addr), self.prefix)
    }

    /// The subnet of the shared session bridge: the last sixteenth of the
    /// pool (a /20 of a /16: 4094 containers), when that is at least a /24.
    /// A fixed subnet makes creating the bridge race-free: of two launches
    /// that create it at once, the engine gives the address block to one and
    /// refuses the other's as an overlap (a name alone does not stop Docker
    /// from creating two networks called the same).
    pub fn shared_block(&self) -> Option<String> {
        let prefix = self.pool_prefix + 4;
        if prefix > 24 {
            return None;
        }
        let size = 1u32 << (32 - prefix);
        let last = self.base.wrapping_add((1u32 << (32 - self.pool_prefix)).wrapping_sub(size));
        Some(format!("{}/{prefix}", Ipv4Addr::from(last)))
    }

    /// The subnets to try for a session, in order: a start derived from the
    /// id, then a stride through the pool. With `skip_shared`, none inside
    /// [`shared_block`](Self::shared_block), which the shared bridge holds.
    pub fn candidates(&self, session_id: &str, tries: usize, skip_shared: bool) -> Vec<String> {
        let start = fnv1a(session_id.as_bytes());
        // An odd stride visits every subnet of a power-of-two pool.
        let stride = (fnv1a(session_id.as_bytes()).rotate_left(17) | 1) % self.len().max(1);
        let reserved_from = if skip_shared && self.shared_block().is_some() { self.len() - self.len() / 16 } else { self.len() };
        (0..self.len())
            .map(|k| start.wrapping_add(k.wrapping_mul(stride.max(1))) % self.len())
            .filter(|i| *i < reserved_from)
            .take(tries)
            .map(|i| self.subnet(i))
            .collect()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// True when an engine refused a network because its subnet is taken (Docker:
/// "Pool overlaps with other one on this address space"; Podman: "subnet …
/// is already used").
pub(crate) fn is_overlap(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("overlap") || m.contains("already used") || m.contains("already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_tile_the_pool() {
        let p = SubnetPool::parse("10.213.0.0/16", 28).unwrap();
        assert_eq!(p.len(), 4096);
        assert_eq!(p.subnet(0), "10.213.0.0/28");
        assert_eq!(p.subnet(1), "10.213.0.16/28");
        assert_eq!(p.subnet(4095), "10.213.255.240/28");
        assert_eq!(p.subnet(4096), "10.213.0.0/28");
    }

    #[test]
    fn candidates_are_distinct_and_stable() {
        let p = SubnetPool::parse("10.213.7.9/16", 28).unwrap();
        let a = p.candidates("sess-0123456789ab", 8, false);
        assert_eq!(a, p.candidates("sess-0123456789ab", 8, false));
        let unique: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(unique.len(), 8);
        assert!(a.iter().all(|s| s.starts_with("10.213.") && s.ends_with("/28")));
        assert_ne!(a[0], p.candidates("sess-ba9876543210", 1, false)[0]);
    }

    #[test]
    fn the_shared_bridge_takes_the_pools_last_sixteenth() {
        assert_eq!(SubnetPool::parse("10.213.0.0/16", 28).unwrap().shared_block().as_deref(), Some("10.213.240.0/20"));
        assert_eq!(SubnetPool::parse("10.214.0.0/20", 28).unwrap().shared_block().as_deref(), Some("10.214.15.0/24"));
        assert_eq!(SubnetPool::parse("10.214.0.0/22", 28).unwrap().shared_block(), None);
        // Session networks stay out of it when the bridge is in use.
        let p = SubnetPool::parse("10.213.0.0/16", 28).unwrap();
        for id in ["a", "b", "sess-1", "sess-0123456789ab"] {
            let third = |s: &String| s.split('.').nth(2).and_then(|o| o.parse::<u8>().ok()).unwrap();
            assert!(p.candidates(id, 32, true).iter().all(|s| third(s) < 240), "{id}");
            assert_eq!(p.candidates(id, 32, true).len(), 32);
        }
    }

    #[test]
    fn bad_pools_are_refused() {
        assert!(SubnetPool::parse("10.213.0.0", 28).is_err());
        assert!(SubnetPool::parse("10.213.0.0/29", 28).is_err());
        assert!(SubnetPool::parse("nonsense/16", 28).is_err());
        assert!(SubnetPool::parse("10.0.0.0/8", 31).is_err());
    }

    #[test]
    fn overlap_messages() {
        assert!(is_overlap("Pool overlaps with other one on this address space"));
        assert!(is_overlap("subnet 10.213.0.0/28 is already used on the host or by another config"));
        assert!(!is_overlap("network with name x already exists"));
    }
}
