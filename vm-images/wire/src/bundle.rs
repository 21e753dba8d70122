//! Many small files as one record's payload: the harvest sends the ~2,800
//! event formats of a kernel this way, not as one record each. Each file is
//! `name_len u32 | name | data_len u32 | data` (little-endian), in order.

/// The record name of the event formats' bundle; its files are named as
/// in the raw harvest layout (`tracing/events/<system>/<event>/format`).
pub const EVENT_FORMATS: &str = "tracing/events.bundle";

/// Appends one file to a bundle.
pub fn push(bundle: &mut Vec<u8>, name: &str, data: &[u8]) {
    // Names and formats are far below 4 GiB; a longer one would be cut
    // short by the decoder as a truncated bundle, never misread.
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bundle.extend_from_slice(&len(name.len()));
    bundle.extend_from_slice(name.as_bytes());
    bundle.extend_from_slice(&len(data.len()));
    bundle.extend_from_slice(data);
}

/// A bundle that does not split into whole files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a bundle of files is cut short or malformed at byte {at}")]
pub struct BundleError {
    /// Where the file that does not fit starts.
    pub at: usize,
}

/// The files of a bundle, in order: (name, data).
pub fn split(bundle: &[u8]) -> Result<Vec<(String, &[u8])>, BundleError> {
    let mut files = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let at = bundle.len() - rest.len();
        let bad = || BundleError { at };
        let (name, after) = take(rest).ok_or_else(bad)?;
        let name = std::str::from_utf8(name).map_err(|_| bad())?;
        let (data, after) = take(after).ok_or_else(bad)?;
        files.push((name.to_owned(), data));
        rest = after;
    }
    Ok(files)
}

/// A length-prefixed slice and what follows it.
fn take(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_truncation_is_an_error() {
        let mut bundle = Vec::new();
        push(
            &mut bundle,
            "tracing/events/sched/sched_switch/format",
            b"name: sched_switch\n",
        );
        let first = bundle.len();
        push(&mut bundle, "empty", b"");
        let files = split(&bundle).unwrap();
        assert_eq!(
            files,
            [
                (
                    "tracing/events/sched/sched_switch/format".to_owned(),
                    &b"name: sched_switch\n"[..]
                ),
                ("empty".to_owned(), &b""[..]),
            ]
        );
        assert!(split(&[]).unwrap().is_empty());
        for cut in 1..bundle.len() {
            if cut != first {
                assert!(split(&bundle[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}
