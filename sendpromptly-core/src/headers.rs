//! [`HeaderLookup`]: case-insensitive access to HTTP request headers, whatever
//! container the caller happens to hold them in.
//!
//! Every verifier in this crate takes `&impl HeaderLookup` (or
//! `&dyn HeaderLookup`), so web frameworks can pass an [`http::HeaderMap`],
//! SDKs and language bindings a `HashMap`/`BTreeMap`, and tests a plain slice
//! of pairs.
//!
//! ```
//! use sendpromptly_core::headers::HeaderLookup;
//!
//! let pairs = [("Webhook-Id", "rep_1"), ("content-type", "application/json")];
//! assert_eq!(pairs.header("webhook-id"), Some("rep_1"));
//! assert_eq!(pairs.header("CONTENT-TYPE"), Some("application/json"));
//! assert_eq!(pairs.header("missing"), None);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Read-only, case-insensitive header access.
///
/// Names are compared ASCII-case-insensitively, as HTTP requires. When a
/// container holds the same name more than once, the first value found is
/// returned (for [`http::HeaderMap`]: the first value of that name). Values
/// that are not valid visible ASCII/UTF-8 (possible in an `HeaderMap`) are
/// reported as absent.
pub trait HeaderLookup {
    /// The value of the header `name` (any letter case), if present.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for &T {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for Box<T> {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}

impl HeaderLookup for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        // `HeaderMap::get(&str)` lower-cases the name itself; an invalid
        // header name simply finds nothing.
        self.get(name).and_then(|value| value.to_str().ok())
    }
}

fn find_in_pairs<'a, K, V, I>(pairs: I, name: &str) -> Option<&'a str>
where
    K: AsRef<str> + 'a + ?Sized,
    V: AsRef<str> + 'a + ?Sized,
    I: IntoIterator<Item = (&'a K, &'a V)>,
{
    pairs
        .into_iter()
        .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_ref())
}

impl<K: AsRef<str>, V: AsRef<str>, S: BuildHasher> HeaderLookup for HashMap<K, V, S> {
    fn header(&self, name: &str) -> Option<&str> {
        find_in_pairs(self.iter(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for BTreeMap<K, V> {
    fn header(&self, name: &str) -> Option<&str> {
        find_in_pairs(self.iter(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        find_in_pairs(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderLookup for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_is_case_insensitive() {
        let mut map = http::HeaderMap::new();
        map.insert("webhook-id", http::HeaderValue::from_static("a"));
        assert_eq!(map.header("Webhook-ID"), Some("a"));
        assert_eq!(map.header("not a valid name"), None);

        let hash: HashMap<String, String> = [("Webhook-Id".to_owned(), "b".to_owned())].into();
        assert_eq!(hash.header("webhook-id"), Some("b"));

        let tree: BTreeMap<&str, &str> = [("WEBHOOK-ID", "c")].into();
        assert_eq!(tree.header("webhook-id"), Some("c"));

        let vec = vec![("webhook-id".to_owned(), "d".to_owned())];
        assert_eq!(vec.header("WEBHOOK-ID"), Some("d"));
        assert_eq!(vec.as_slice().header("webhook-id"), Some("d"));

        let dynamic: &dyn HeaderLookup = &vec;
        assert_eq!(dynamic.header("Webhook-Id"), Some("d"));
    }

    #[test]
    fn first_duplicate_wins() {
        let pairs = [("x", "1"), ("X", "2")];
        assert_eq!(pairs.header("x"), Some("1"));
    }
}
