//! Classification by error name: the last segment of the name (or the code of a Node-style
//! `Error [ERR_X]`) against [`NAME_EXACT`], indexed by length at compile time, then against the
//! prefix/suffix patterns of [`NAME_PATTERNS`] in table order.

use super::tables::{NameMatch, NAME_EXACT, NAME_PATTERNS};
use super::Class;

/// The last segment of a qualified name (`a.b.C`, `A::B`), trimmed.
fn simple_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&c| c == b'.' || c == b':') {
        Some(p) => name[p + 1..].trim_ascii(),
        None => name,
    }
}

pub(super) fn class_by_name(name: &str) -> Option<Class> {
    let trimmed = name.as_bytes().trim_ascii();
    if let Some(class) = class_by_simple_name(simple_name(trimmed)) {
        return Some(class);
    }
    // Node's `Error [ERR_SOMETHING]` form: try the code.
    let code = trimmed.strip_suffix(b"]")?;
    let open = code.iter().rposition(|&c| c == b'[')?;
    class_by_simple_name(code[open + 1..].trim_ascii())
}

fn class_by_simple_name(simple: &[u8]) -> Option<Class> {
    if let Some(ids) = EXACT_INDEX.bucket(simple.len()) {
        for &id in ids {
            let (pattern, class) = NAME_EXACT[usize::from(id)];
            if eq_ignore_case(simple, pattern.as_bytes()) {
                return Some(class);
            }
        }
    }
    for &(pattern, how, class) in NAME_PATTERNS {
        let p = pattern.as_bytes();
        if p.len() > simple.len() {
            continue;
        }
        let part = match how {
            NameMatch::Prefix => &simple[..p.len()],
            NameMatch::Suffix => &simple[simple.len() - p.len()..],
        };
        if eq_ignore_case(part, p) {
            return Some(class);
        }
    }
    None
}

/// ASCII case-insensitive equality that gives up at the first difference (the std version
/// compares whole chunks, which is slower for the many near-misses here).
pub(super) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Exact names longer than this are not indexed (none are; a test checks).
pub(super) const MAX_EXACT_NAME: usize = 48;

/// [`NAME_EXACT`] entry ids grouped by name length (computed at compile time).
struct LengthIndex {
    /// `ids[start[n]..start[n + 1]]` are the entries of length `n`.
    start: [u16; MAX_EXACT_NAME + 2],
    ids: [u16; NAME_EXACT.len()],
}

impl LengthIndex {
    fn bucket(&self, len: usize) -> Option<&[u16]> {
        let lo = usize::from(*self.start.get(len)?);
        let hi = usize::from(*self.start.get(len + 1)?);
        self.ids.get(lo..hi)
    }
}

static EXACT_INDEX: LengthIndex = {
    let mut start = [0u16; MAX_EXACT_NAME + 2];
    let mut i = 0;
    while i < NAME_EXACT.len() {
        let len = NAME_EXACT[i].0.len();
        assert!(len <= MAX_EXACT_NAME, "raise MAX_EXACT_NAME");
        start[len + 1] += 1;
        i += 1;
    }
    let start = super::running_totals(start);
    let mut fill = start;
    let mut ids = [0u16; NAME_EXACT.len()];
    i = 0;
    while i < NAME_EXACT.len() {
        let len = NAME_EXACT[i].0.len();
        ids[fill[len] as usize] = i as u16;
        fill[len] += 1;
        i += 1;
    }
    LengthIndex { start, ids }
};

#[cfg(test)]
mod tests {
    use crate::event::classify::tests::class_of;
    use crate::event::classify::Class;

    #[test]
    fn brief_name_examples() {
        let cases = [
            ("TypeError", Class::Programming),
            ("ReferenceError", Class::Programming),
            ("SyntaxError", Class::Programming),
            ("NullPointerException", Class::Programming),
            ("KeyError", Class::Programming),
            ("ValueError", Class::Validation),
            ("ECONNREFUSED", Class::Network),
            ("ETIMEDOUT", Class::Timeout),
            ("ENOENT", Class::Filesystem),
            ("EACCES", Class::Filesystem),
            ("MemoryError", Class::Memory),
            ("OutOfMemoryError", Class::Memory),
            ("ModuleNotFoundError", Class::Dependency),
            ("SequelizeUniqueConstraintError", Class::Database),
        ];
        for (name, want) in cases {
            assert_eq!(class_of(Some(name), "x"), want, "{name}");
        }
    }

    #[test]
    fn names_are_matched_case_insensitively_on_their_last_segment() {
        let cases = [
            ("java.lang.NullPointerException", Class::Programming),
            ("java.lang.OutOfMemoryError", Class::Memory),
            ("ActiveRecord::RecordNotFound", Class::NotFound),
            ("requests.exceptions.ConnectionError", Class::Network),
            ("sqlalchemy.exc.IntegrityError", Class::Database),
            ("econnrefused", Class::Network),
            ("  typeerror ", Class::Programming),
            ("errors: TypeError", Class::Programming),
            ("Error [ERR_MODULE_NOT_FOUND]", Class::Dependency),
            ("TypeError [ERR_INVALID_ARG_TYPE]", Class::Programming),
        ];
        for (name, want) in cases {
            assert_eq!(class_of(Some(name), ""), want, "{name}");
        }
    }

    #[test]
    fn name_patterns_in_table_order() {
        let cases = [
            ("SequelizeConnectionRefusedError", Class::Database),
            ("MongoServerSelectionError", Class::Database),
            ("PrismaClientKnownRequestError", Class::Database),
            ("PrismaClientValidationError", Class::Validation),
            ("ER_DUP_ENTRY", Class::Database),
            ("SQLITE_CONSTRAINT", Class::Database),
            ("ERR_TLS_CERT_ALTNAME_INVALID", Class::Network),
            // Suffix timeout before the vendor prefix.
            ("MongoNetworkTimeoutError", Class::Timeout),
            ("ConnectionTimeoutError", Class::Timeout),
            ("PoolTimeout", Class::Timeout),
            ("SchemaValidationError", Class::Validation),
            ("UserNotFoundException", Class::NotFound),
            ("ApiAuthenticationError", Class::Authentication),
            ("StripeRateLimitError", Class::RateLimit),
            ("YamlConfigException", Class::Configuration),
            // Exact beats patterns: ModuleNotFoundError is not "*NotFoundError".
            ("ModuleNotFoundError", Class::Dependency),
            ("FileNotFoundError", Class::Filesystem),
        ];
        for (name, want) in cases {
            assert_eq!(class_of(Some(name), ""), want, "{name}");
        }
    }
}
