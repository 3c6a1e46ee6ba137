//! IPv4 address ranges (CIDR blocks) for the pod network: the cluster's
//! ranges, each node's block of them, and the addresses in a block.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 range, `address/prefix`, its address the first of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: u32,
    prefix: u8,
}

/// Why a range does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 range such as 10.42.0.0/16")]
    Malformed(String),
    #[error("{0:?}: IPv6 ranges are not supported yet; give an IPv4 range such as 10.42.0.0/16")]
    Ipv6(String),
    #[error("{text:?} has bits set past its /{prefix}: the range starts at {start}")]
    NotARangeStart { text: String, prefix: u8, start: Cidr },
}

impl Cidr {
    /// The range of `prefix` bits starting at `network`.
    ///
    /// # Panics
    /// Never for a `prefix` up to 32; a larger one is clamped to 32.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Cidr {
        let prefix = prefix.min(32);
        Cidr {
            network: u32::from(network) & mask(prefix),
            prefix,
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The number of addresses in the range.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `index`th address of the range (0 is the network address), if
    /// the range has that many.
    pub fn address(&self, index: u64) -> Option<Ipv4Addr> {
        (index < self.size()).then(|| Ipv4Addr::from(self.network + index as u32))
    }

    /// The gateway a bridge on this range takes: its first usable address.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(self.network + 1))
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == self.network
    }

    /// Whether the two ranges share an address (one holds the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let prefix = self.prefix.min(other.prefix);
        self.network & mask(prefix) == other.network & mask(prefix)
    }

    /// The number of blocks of `prefix` bits in this range (0 if `prefix`
    /// is shorter than the range's own).
    pub fn blocks(&self, prefix: u8) -> u64 {
        if prefix < self.prefix || prefix > 32 {
            return 0;
        }
        1u64 << (prefix - self.prefix)
    }

    /// The `index`th block of `prefix` bits in this range.
    pub fn block(&self, prefix: u8, index: u64) -> Option<Cidr> {
        (index < self.blocks(prefix)).then(|| Cidr {
            network: self.network + (index << (32 - u32::from(prefix))) as u32,
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let malformed = || CidrError::Malformed(text.to_string());
        let (address, prefix) = text.trim().split_once('/').ok_or_else(malformed)?;
        if address.contains(':') {
            return Err(CidrError::Ipv6(text.to_string()));
        }
        let address: Ipv4Addr = address.parse().map_err(|_| malformed())?;
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        if prefix > 32 {
            return Err(malformed());
        }
        let cidr = Cidr::new(address, prefix);
        if cidr.network() != address {
            return Err(CidrError::NotARangeStart {
                text: text.to_string(),
                prefix,
                start: cidr,
            });
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_print_and_refuse_what_is_not_one() {
        assert_eq!(cidr("10.42.0.0/16").to_string(), "10.42.0.0/16");
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        for bad in ["10.42.0.0", "10.42.0.0/33", "10.42.0/16", "ten/8", "10.42.0.0/-1"] {
            assert!(matches!(bad.parse::<Cidr>(), Err(CidrError::Malformed(_))), "{bad}");
        }
        assert!(matches!("fd00::/64".parse::<Cidr>(), Err(CidrError::Ipv6(_))));
        let error = "10.42.1.0/16".parse::<Cidr>().unwrap_err();
        assert!(error.to_string().contains("starts at 10.42.0.0/16"), "{error}");
    }

    #[test]
    fn blocks_tile_the_range_in_order() {
        let range = cidr("10.42.0.0/16");
        assert_eq!(range.blocks(24), 256);
        assert_eq!(range.block(24, 0), Some(cidr("10.42.0.0/24")));
        assert_eq!(range.block(24, 255), Some(cidr("10.42.255.0/24")));
        assert_eq!(range.block(24, 256), None);
        assert_eq!(range.blocks(8), 0, "a block larger than the range");
        assert_eq!(cidr("10.42.3.0/24").gateway(), Some("10.42.3.1".parse().unwrap()));
        assert_eq!(cidr("10.42.3.4/31").gateway(), None);
    }

    #[test]
    fn overlap_is_sharing_an_address() {
        let range = cidr("10.42.0.0/16");
        assert!(range.overlaps(&cidr("10.42.7.0/24")));
        assert!(cidr("10.42.7.0/24").overlaps(&range));
        assert!(!range.overlaps(&cidr("10.43.0.0/16")));
        assert!(range.contains("10.42.200.1".parse().unwrap()));
        assert!(!range.contains("10.43.0.1".parse().unwrap()));
    }
}
