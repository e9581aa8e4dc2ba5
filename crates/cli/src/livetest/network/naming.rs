//! Names, addresses and ownership of the kernel objects a test network creates.
//!
//! Everything a [`super::NodeNetwork`] makes carries the prefix [`PREFIX`] (`rkv-`)
//! followed by a six-hex-digit key derived from the run tag (FNV-1a), so that debris of
//! a crashed run can be found by name alone, and two runs with different tags never
//! pick the same names. Interface names are limited to 15 bytes by the kernel, which is
//! why links carry the key and not the tag itself: `rkv-1a2b3c-br` is the bridge,
//! `rkv-1a2b3c-h0` node 0's host-side veth (its namespace side is renamed `eth0` once
//! moved). Namespace names have no such limit and carry the sanitized tag as well:
//! `rkv-1a2b3c-mytag-0`.
//!
//! Ownership: a live run registers its key in a small directory
//! ([`registry_directory`]) as a file holding its process id, written under an
//! exclusive file lock before it creates anything and removed before it tears anything
//! down. A prefixed object whose key has no registration, or whose registered process
//! is gone, is a leftover: that is what lets a startup sweep remove a crashed run's
//! debris without touching a concurrent live run. (A process id reused by an unrelated
//! process would make debris look owned until that process ends; the sweep then simply
//! leaves it for the next time.)
//!
//! Addresses: every network gets its own /24, chosen under the same lock: the first of
//! `10.213.N.0/24` (starting at a key-derived N), then `172.29.N.0/24`, that overlaps
//! no address or route of the root namespace, including other runs' bridges. The host
//! side (the bridge) is `.1`, node `i` is `.(i + 2)`.

use super::commands;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Every namespace and link this layer creates starts with this.
pub const PREFIX: &str = "rkv-";

/// Most nodes one network may hold (addresses `.2 ..= .65`, link names within 15 bytes).
pub const NODE_COUNT_MAX: usize = 64;

/// Longest piece of the run tag kept in namespace names.
pub const TAG_SIZE_MAX_BYTES: usize = 24;

/// The six hex digits that name one run's objects: FNV-1a of the whole run tag.
pub fn key_of(run_tag: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in run_tag.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:06x}", hash & 0xff_ffff)
}

/// The run tag reduced to lowercase letters and digits, at most [`TAG_SIZE_MAX_BYTES`].
pub fn sanitized_tag(run_tag: &str) -> String {
    let tag: String = run_tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|character| character.to_ascii_lowercase())
        .take(TAG_SIZE_MAX_BYTES)
        .collect();
    if tag.is_empty() { "run".into() } else { tag }
}

pub fn namespace_name(key: &str, tag: &str, node_index: usize) -> String {
    format!("{PREFIX}{key}-{tag}-{node_index}")
}

pub fn bridge_name(key: &str) -> String {
    format!("{PREFIX}{key}-br")
}

pub fn host_link_name(key: &str, node_index: usize) -> String {
    format!("{PREFIX}{key}-h{node_index}")
}

/// The namespace-side end of node `node_index`'s veth while it is still in the root
/// namespace (it is renamed `eth0` once moved).
pub fn node_link_name(key: &str, node_index: usize) -> String {
    format!("{PREFIX}{key}-p{node_index}")
}

/// The key inside a prefixed name (`rkv-1a2b3c-...` → `1a2b3c`), if it has one.
pub fn key_in_name(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let key = rest.get(..6)?;
    key.bytes()
        .all(|byte| byte.is_ascii_hexdigit())
        .then_some(key)
}

/// Where live runs register (`/run` is a tmpfs: it empties on reboot, as namespaces do).
pub fn registry_directory() -> PathBuf {
    PathBuf::from("/run/replikv-netns")
}

/// An exclusive lock over the registry and subnet choice, released on drop.
#[derive(Debug)]
pub struct RegistryLock {
    _file: File,
}

pub fn lock_registry() -> Result<RegistryLock, String> {
    let directory = registry_directory();
    std::fs::create_dir_all(&directory)
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    let path = directory.join("lock");
    let file = File::create(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    file.lock()
        .map_err(|error| format!("locking {}: {error}", path.display()))?;
    Ok(RegistryLock { _file: file })
}

fn registration_path(key: &str) -> PathBuf {
    registry_directory().join(key)
}

/// Records that this process owns `key`'s objects (call under the lock).
pub fn register(key: &str) -> Result<(), String> {
    let path = registration_path(key);
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// Forgets `key`'s registration; its objects become leftovers if any remain.
pub fn unregister(key: &str) {
    let _ = std::fs::remove_file(registration_path(key));
}

/// Whether a live process registered `key`.
pub fn is_owned(key: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(registration_path(key)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    PathBuf::from(format!("/proc/{pid}")).exists()
}

/// Keys registered by processes that are gone.
pub fn stale_registrations() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(registry_directory()) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.len() == 6 && key_in_name(&format!("{PREFIX}{name}")).is_some())
        .filter(|key| !is_owned(key))
        .collect()
}

/// Names of every namespace and link in the root namespace that start with [`PREFIX`].
pub fn prefixed_objects() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(text) = commands::ip(&["netns", "list"]) {
        names.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().next())
                .map(String::from),
        );
    }
    if let Ok(text) = commands::ip(&["-o", "link", "show"]) {
        names.extend(text.lines().filter_map(link_name_of_line));
    }
    names.retain(|name| name.starts_with(PREFIX));
    names.sort();
    names.dedup();
    names
}

/// The interface name in one line of `ip -o link show` (`5: rkv-x-h0@if4: <...`).
fn link_name_of_line(line: &str) -> Option<String> {
    let field = line.split_whitespace().nth(1)?;
    let field = field.trim_end_matches(':');
    Some(field.split('@').next()?.to_string())
}

/// An IPv4 network `address/prefix_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub address: Ipv4Addr,
    pub prefix_length: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        if self.prefix_length == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_length))
        }
    }

    /// Whether the two networks share any address.
    pub fn overlaps(self, other: Subnet) -> bool {
        let shorter = self.prefix_length.min(other.prefix_length);
        let mask = Subnet {
            address: self.address,
            prefix_length: shorter,
        }
        .mask();
        u32::from(self.address) & mask == u32::from(other.address) & mask
    }

    /// The `host`th address of this /24.
    pub fn host(self, host: u8) -> Ipv4Addr {
        debug_assert_eq!(self.prefix_length, 24);
        let [a, b, c, _] = self.address.octets();
        Ipv4Addr::new(a, b, c, host)
    }
}

/// Parses `a.b.c.d/len` or a bare `a.b.c.d` (a /32).
fn parse_subnet(token: &str) -> Option<Subnet> {
    let (address, prefix_length) = match token.split_once('/') {
        Some((address, length)) => (address, length.parse().ok()?),
        None => (token, 32),
    };
    let address: Ipv4Addr = address.parse().ok()?;
    (prefix_length <= 32).then_some(Subnet {
        address,
        prefix_length,
    })
}

/// Every network named in the root namespace's addresses and routes (`default` routes
/// are not networks of their own and are skipped).
pub fn networks_in_use() -> Result<Vec<Subnet>, String> {
    let mut text = commands::ip(&["-o", "-4", "addr", "show"])?;
    text.push_str(&commands::ip(&["-4", "route", "show", "table", "all"])?);
    Ok(text
        .split_whitespace()
        .filter_map(parse_subnet)
        .filter(|subnet| subnet.prefix_length > 0)
        .collect())
}

/// The first /24 candidate (see the module documentation) that overlaps nothing in `used`.
pub fn choose_subnet(key: &str, used: &[Subnet]) -> Option<Subnet> {
    let start = u8::from_str_radix(&key[..2], 16).unwrap_or(0);
    let blocks = [(10u8, 213u8), (172, 29)];
    blocks.iter().find_map(|&(first, second)| {
        (0..=255u8)
            .map(|step| start.wrapping_add(step))
            .find_map(|third| {
                let candidate = Subnet {
                    address: Ipv4Addr::new(first, second, third, 0),
                    prefix_length: 24,
                };
                (!used.iter().any(|subnet| subnet.overlaps(candidate))).then_some(candidate)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_carry_the_key() {
        let key = key_of("a run tag that is rather long, with spaces");
        assert_eq!(key.len(), 6);
        assert_ne!(key, key_of("another tag"));
        let longest_index = NODE_COUNT_MAX - 1;
        for name in [
            bridge_name(&key),
            host_link_name(&key, longest_index),
            node_link_name(&key, longest_index),
        ] {
            assert!(name.len() <= 15, "{name}");
            assert_eq!(key_in_name(&name), Some(key.as_str()));
        }
        let tag = sanitized_tag("Run #7, attempt/2");
        assert_eq!(tag, "run7attempt2");
        assert_eq!(sanitized_tag("!!!"), "run");
        assert_eq!(
            key_in_name(&namespace_name(&key, &tag, 3)),
            Some(key.as_str())
        );
        assert_eq!(key_in_name("rkv-xyz"), None);
        assert_eq!(key_in_name("eth0"), None);
    }

    #[test]
    fn link_lines_give_their_names() {
        assert_eq!(
            link_name_of_line("5: rkv-1a2b3c-h0@if4: <BROADCAST> mtu 1500").as_deref(),
            Some("rkv-1a2b3c-h0")
        );
        assert_eq!(
            link_name_of_line("1: lo: <LOOPBACK,UP>").as_deref(),
            Some("lo")
        );
    }

    #[test]
    fn the_chosen_subnet_avoids_every_network_in_use() {
        let used: Vec<Subnet> = [
            "192.0.2.2/24",
            "10.213.18.1/24",
            "10.213.19.0/24",
            "127.0.0.1/8",
        ]
        .iter()
        .map(|text| parse_subnet(text).unwrap())
        .collect();
        let chosen = choose_subnet("12abcd", &used).unwrap();
        assert_eq!(chosen.address, Ipv4Addr::new(10, 213, 0x14, 0));
        let everything_ten = [parse_subnet("10.0.0.0/8").unwrap()];
        let chosen = choose_subnet("12abcd", &everything_ten).unwrap();
        assert_eq!(chosen.address, Ipv4Addr::new(172, 29, 0x12, 0));
        assert!(
            parse_subnet("10.1.2.3/24")
                .unwrap()
                .overlaps(parse_subnet("10.1.2.200").unwrap())
        );
        assert!(
            !parse_subnet("10.1.2.3/24")
                .unwrap()
                .overlaps(parse_subnet("10.1.3.0/24").unwrap())
        );
        assert_eq!(parse_subnet("default"), None);
        assert_eq!(parse_subnet("1.2.3.4/33"), None);
    }
}
