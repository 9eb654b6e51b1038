// TEMP stub, replaced by helper's file
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u128);
impl Fingerprint {
    pub fn to_hex(self) -> [u8; 32] {
        let mut o = [0u8; 32];
        let s = format!("{:032x}", self.0);
        o.copy_from_slice(s.as_bytes());
        o
    }
}
pub fn compute(name: Option<&str>, message: &str, stack_escaped: Option<&str>) -> Fingerprint {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(name.unwrap_or("").as_bytes());
    h.update(message.as_bytes());
    h.update(stack_escaped.unwrap_or("").as_bytes());
    Fingerprint(h.digest128())
}
pub fn from_client(parts: &[&str]) -> Fingerprint {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    Fingerprint(h.digest128())
}
