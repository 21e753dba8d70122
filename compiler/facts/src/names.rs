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

impl Serialize for NameList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NameList, D::Error> {
        let text = String::deserialize(deserializer)?;
        let list = NameList::from_text(text);
        // Each name against the next, found through the index (a `split`
        // by char costs more than the whole JSON parse).
        let sorted = (1..list.len()).all(|index| list.get(index - 1) < list.get(index));
        let blank = list.text.starts_with(' ')
            || memchr::memchr2(b'\n', b'\t', list.text.as_bytes()).is_some();
        if !sorted || blank {
            return Err(serde::de::Error::custom(
                "name list not sorted, distinct and space-separated",
            ));
        }
        Ok(list)
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
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#""a b c c.isra.0""#);
        assert_eq!(serde_json::from_str::<NameList>(&json).unwrap(), list);
        assert!(serde_json::from_str::<NameList>(r#""b a""#).is_err());
        assert!(serde_json::from_str::<NameList>(r#""a  b""#).is_err());
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
