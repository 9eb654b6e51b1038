//! The services a fingerprint was seen from besides the first one, for `/fingerprints`
//! (`services`, `services_more`) and the dashboard ("checkout, billing +2").
//!
//! Bounded per fingerprint whatever clients send: [`MAX_NAMED`] names (the first service, kept in
//! the table's `FpMeta`, included) that together take at most [`NAMES_BYTES`]; further services
//! are only counted, each by a 32-bit hash, up to [`MAX_COUNTED`], where the count stops. Worst
//! case ≤ 400 bytes as glibc allocates them (the `Arc` 64, the slice of names 64, three names
//! worth 96 bytes ≤ 176, 16 hashes 80). A fingerprint seen from one service has none of this (the table keeps an `Option`),
//! and the table bounds how many entries hold one (`table::SERVICE_SETS_DIVISOR`).
//!
//! Not taken: a probabilistic distinct count (linear counting in one 64-bit word) would save
//! the hashes' 80 bytes, but miscounts two services as one 1.6 % of the time, and small counts
//! are exactly the ones an operator reads.

/// Services named per fingerprint, the first one included; later ones are counted.
pub const MAX_NAMED: usize = 4;

/// Bytes the second to [`MAX_NAMED`]th names may take together (each is also at most
/// `table::NAME_SAMPLE`); a name that does not fit in what is left is counted instead. 96 bytes
/// hold three typical service names ("checkout-api", "billing-worker", …).
pub const NAMES_BYTES: usize = 96;

/// Further services counted per fingerprint; past this `more()` stays at this value
/// ("this many or more").
pub const MAX_COUNTED: usize = 16;

/// The services of one fingerprint besides its first. Built only when a second service shows up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtherServices {
    /// In the order first seen; at most `MAX_NAMED - 1`, together at most [`NAMES_BYTES`].
    names: Box<[Box<str>]>,
    /// `xxh3` (low 32 bits) of each further service, sorted; at most [`MAX_COUNTED`].
    counted: Box<[u32]>,
}

impl OtherServices {
    /// Whether recording `service` would change the set: it is neither named nor counted, and
    /// there is room to name or count it. Cheap when it is named (string compares only) and when
    /// the count is full (no hashing); `&self`, so a shared set is only copied when it changes.
    pub fn would_add(&self, service: &str) -> bool {
        if self.names.iter().any(|n| **n == *service) {
            return false;
        }
        if self.can_name(service) {
            return true;
        }
        self.counted.len() < MAX_COUNTED && self.counted.binary_search(&hash(service)).is_err()
    }

    /// Records `service` (not the fingerprint's first service: the table checks that); returns
    /// whether the set changed.
    pub fn add(&mut self, service: &str) -> bool {
        if self.names.iter().any(|n| **n == *service) {
            return false;
        }
        if self.can_name(service) {
            self.names = append(&self.names, service.into());
            return true;
        }
        if self.counted.len() >= MAX_COUNTED {
            return false;
        }
        let h = hash(service);
        match self.counted.binary_search(&h) {
            Ok(_) => false,
            Err(at) => {
                let mut v = Vec::with_capacity(self.counted.len() + 1);
                v.extend_from_slice(&self.counted[..at]);
                v.push(h);
                v.extend_from_slice(&self.counted[at..]);
                self.counted = v.into_boxed_slice();
                true
            }
        }
    }

    /// The named ones, in the order first seen.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// How many more were seen, not named; [`MAX_COUNTED`] means that many or more.
    pub fn more(&self) -> usize {
        self.counted.len()
    }

    fn can_name(&self, service: &str) -> bool {
        let used: usize = self.names.iter().map(|n| n.len()).sum();
        self.names.len() < MAX_NAMED - 1 && used + service.len() <= NAMES_BYTES
    }
}

fn hash(service: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(service.as_bytes()) as u32
}

/// A copy of `items` with `item` appended, allocated at its exact size (these slices grow a
/// few times in an entry's life, so no spare capacity is kept).
fn append<T: Clone>(items: &[T], item: T) -> Box<[T]> {
    let mut v = Vec::with_capacity(items.len() + 1);
    v.extend_from_slice(items);
    v.push(item);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &OtherServices) -> Vec<&str> {
        s.names().collect()
    }

    #[test]
    fn names_in_order_then_counts_distinct_ones() {
        let mut s = OtherServices::default();
        for svc in ["billing", "search", "billing", "cart", "search"] {
            assert_eq!(s.would_add(svc), s.clone().add(svc), "{svc}");
            s.add(svc);
        }
        assert_eq!(names(&s), ["billing", "search", "cart"]);
        assert_eq!(s.more(), 0);
        for svc in ["auth", "mail", "auth", "cart", "mail"] {
            assert_eq!(s.would_add(svc), s.clone().add(svc), "{svc}");
            s.add(svc);
        }
        assert_eq!(
            names(&s),
            ["billing", "search", "cart"],
            "names never change"
        );
        assert_eq!(s.more(), 2, "auth and mail, each once");
    }

    #[test]
    fn the_count_stops_at_its_bound() {
        let mut s = OtherServices::default();
        for i in 0..1000 {
            s.add(&format!("svc-{i}"));
        }
        assert_eq!(s.names().count(), MAX_NAMED - 1);
        assert_eq!(s.more(), MAX_COUNTED);
        assert!(!s.would_add("yet-another"), "full: nothing to add");
        assert!(!s.add("yet-another"));
    }

    #[test]
    fn long_names_are_counted_not_named_past_the_byte_budget() {
        let mut s = OtherServices::default();
        let long = "x".repeat(NAMES_BYTES - 10);
        s.add(&long);
        s.add("a-service-name-of-20");
        s.add("short");
        assert_eq!(names(&s), [long.as_str(), "short"]);
        assert_eq!(s.more(), 1);
        let used: usize = s.names().map(str::len).sum();
        assert!(used <= NAMES_BYTES);
        // A counted service stays counted, even though a name slot is still free.
        assert!(!s.add("a-service-name-of-20"));
    }
}
