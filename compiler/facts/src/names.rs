//! [`NameList`]: a sorted list of names kept as one space-separated string,
//! so that loading tens of thousands of names costs one allocation, not one
//! per name, and the JSON string has no escapes (serde_json's fast path:
//! ten times faster than `\n`-separated on kallsyms).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, distinct names (no whitespace) stored as one space-joined string
/// with an index of where each starts. Serialised as that one string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NameList {
    text: String,
    starts: Vec<u32>,
}

impl std::fmt::Debug for NameList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl NameList {
    /// Builds the list from names in any order; duplicates are dropped, and
    /// so are empty names and names with whitespace (callers parse names
    /// before they get here).
    pub fn from_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> NameList {
        let mut lines: Vec<S> = lines
            .into_iter()
            .filter(|name| {
                let name = name.as_ref();
                !name.is_empty() && !name.contains(char::is_whitespace)
            })
            .collect();
        lines.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        lines.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let text = lines
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(" ");
        NameList::from_text(text)
    }

    fn from_text(text: String) -> NameList {
        let mut starts = Vec::new();
        if !text.is_empty() {
            starts.push(0);
            starts.extend(memchr::memchr_iter(b' ', text.as_bytes()).map(|i| i as u32 + 1));
        }
        NameList { text, starts }
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// No lines at all.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The line at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        let start = *self.starts.get(index)? as usize;
        let end = self
            .starts
            .get(index + 1)
            .map_or(self.text.len(), |&next| next as usize - 1);
        self.text.get(start..end)
    }

    /// The lines, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// The line at `index` as bytes (no check of char boundaries: the
    /// separators are ASCII spaces).
    fn bytes(&self, index: usize) -> &[u8] {
        let Some(&start) = self.starts.get(index) else {
            return &[];
        };
        let end = self
            .starts
            .get(index + 1)
            .map_or(self.text.len(), |&next| next as usize - 1);
        self.text
            .as_bytes()
            .get(start as usize..end)
            .unwrap_or_default()
    }

    /// Binary search over the lines' bytes.
    fn search_bytes(&self, target: &[u8]) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.bytes(mid).cmp(target) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// Whether a line equals `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.search_bytes(name.as_bytes()).is_ok()
    }

    /// The lines that start with `prefix`, in order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let start = self.search_bytes(prefix.as_bytes()).unwrap_or_else(|i| i);
        (start..self.len())
            .filter_map(|index| self.get(index))
            .take_while(move |line| line.starts_with(prefix))
    }
}

impl NameList {
    /// The lines that contain `needle`, in order: found with one substring
    /// search over the joined text instead of a look at every line (a
    /// wildcard such as `*sys_open` has no prefix to narrow it). A needle
    /// with whitespace is in no line; an empty one is in every line.
    pub fn containing<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let finder = (!needle.is_empty() && !needle.contains(char::is_whitespace))
            .then(|| memchr::memmem::Finder::new(needle.as_bytes()));
        let mut hits = finder
            .as_ref()
            .map(|finder| {
                finder
                    .find_iter(self.text.as_bytes())
                    .collect::<Vec<usize>>()
            })
            .unwrap_or_default()
            .into_iter()
            // The line a hit starts in: the last start at or before it.
            .map(|at| self.starts.partition_point(|&start| start as usize <= at) - 1)
            .peekable();
        let all = needle.is_empty();
        let mut next_all = 0;
        std::iter::from_fn(move || {
            if all {
                let line = self.get(next_all)?;
                next_all += 1;
                return Some(line);
            }
            let line = hits.next()?;
            while hits.peek() == Some(&line) {
                hits.next();
            }
            self.get(line)
        })
    }
}

impl Serialize for NameList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NameList, D::Error> {
        let text = String::deserialize(deserializer)?;
        NameList::parse_text(text).ok_or_else(|| {
            serde::de::Error::custom("name list not sorted, distinct and space-separated")
        })
    }
}

impl NameList {
    /// The list a saved string holds, or `None` when it is not sorted,
    /// distinct, non-empty names joined by single spaces. One pass: each
    /// separator found with memchr, each name compared with the one
    /// before as bytes (the index and `str` slicing per name cost more
    /// than the JSON parse of the string).
    fn parse_text(text: String) -> Option<NameList> {
        let bytes = text.as_bytes();
        if memchr::memchr2(b'\n', b'\t', bytes).is_some() {
            return None;
        }
        let mut starts = Vec::new();
        if !bytes.is_empty() {
            starts.reserve(bytes.len() / 16);
            let mut previous: &[u8] = &[];
            let mut start = 0;
            for end in memchr::memchr_iter(b' ', bytes).chain(std::iter::once(bytes.len())) {
                let name = bytes.get(start..end)?;
                if name.is_empty() || (start > 0 && previous >= name) {
                    return None;
                }
                starts.push(u32::try_from(start).ok()?);
                previous = name;
                start = end + 1;
            }
        }
        Some(NameList { text, starts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_distinct_and_searchable() {
        let list = NameList::from_lines(["b", "a", "c.isra.0", "c", "b"]);
        assert_eq!(list.iter().collect::<Vec<_>>(), ["a", "b", "c", "c.isra.0"]);
        assert!(list.contains("c") && !list.contains("d") && !list.contains(""));
        assert_eq!(list.with_prefix("c.").collect::<Vec<_>>(), ["c.isra.0"]);
        assert_eq!(list.containing("c").collect::<Vec<_>>(), ["c", "c.isra.0"]);
        assert_eq!(list.containing("a").collect::<Vec<_>>(), ["a", "c.isra.0"]);
        assert_eq!(list.containing("").count(), 4);
        assert_eq!(list.containing("b c").count(), 0);
        assert_eq!(list.containing("x").count(), 0);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#""a b c c.isra.0""#);
        assert_eq!(serde_json::from_str::<NameList>(&json).unwrap(), list);
        assert!(serde_json::from_str::<NameList>(r#""b a""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#""a  b""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#"" a b""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#""a b ""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#""a a""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#""a\tb""#).is_err());
        assert_eq!(
            serde_json::from_str::<NameList>(r#""a ab b""#).unwrap(),
            NameList::from_lines(["b", "ab", "a"])
        );
        assert_eq!(
            NameList::from_lines(["a b", "", "c"])
                .iter()
                .collect::<Vec<_>>(),
            ["c"]
        );
        let empty = NameList::from_lines(Vec::<String>::new());
        assert!(empty.is_empty() && !empty.contains(""));
        assert_eq!(serde_json::from_str::<NameList>(r#""""#).unwrap(), empty);
    }
}
