//! The host reads records from a guest whose kernel may be anyone's build:
//! random bytes, cut streams and headers that lie about their lengths must
//! end in an error (or a clean end), never a panic, and never cost more
//! memory than the bounds allow. A counting allocator measures the peak.
#![allow(
    unsafe_code,
    reason = "a counting global allocator wraps the system allocator"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is the test failing"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use tapmatrix_wire::{
    DoneStatus, MAX_NAME_LEN, MAX_PAYLOAD_LEN, RecordKind, RecordReader, RecordWriter, WireError,
};

/// The system allocator, counting the bytes live and the peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let grown = new_size - layout.size();
            let live = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measurements of the peak must not overlap (tests run on threads).
static MEASURING: Mutex<()> = Mutex::new(());

/// Reads every record of `bytes`; the peak memory above what was live
/// before, and how the stream ended.
fn read_all(bytes: &[u8]) -> (usize, Result<usize, WireError>) {
    let _one_at_a_time = MEASURING
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut reader = RecordReader::new(bytes);
    let mut records = 0;
    let ended = loop {
        match reader.next_record() {
            Ok(Some(_)) => records += 1,
            Ok(None) => break Ok(records),
            Err(error) => break Err(error),
        }
    };
    (PEAK.load(Ordering::Relaxed) - before, ended)
}

/// A header with the given fields.
fn header(kind: u8, flags: u8, name_len: u16, body_len: u32, raw_len: u32) -> Vec<u8> {
    let mut bytes = b"TMR1".to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(name_len.to_le_bytes());
    bytes.extend(body_len.to_le_bytes());
    bytes.extend(raw_len.to_le_bytes());
    bytes
}

/// A valid stream of a few records, some compressed.
fn valid_stream() -> Vec<u8> {
    let mut writer = RecordWriter::new(Vec::new());
    writer
        .write(RecordKind::File, "uname_release", b"6.1.0-40-amd64\n")
        .unwrap();
    writer
        .write(
            RecordKind::File,
            "kallsyms",
            &b"ffffffff81000000 T _text\n".repeat(200),
        )
        .unwrap();
    writer
        .write(RecordKind::Line, "run", br#"{"output":"hi"}"#)
        .unwrap();
    writer
        .finish(&DoneStatus {
            ok: true,
            message: "done".into(),
        })
        .unwrap();
    writer.get_ref().clone()
}

#[test]
fn headers_that_claim_huge_lengths_are_refused_before_allocating() {
    for (what, bytes) in [
        ("4 GiB body", header(1, 0, 4, u32::MAX, u32::MAX)),
        ("4 GiB compressed", header(1, 1, 4, 100, u32::MAX)),
        ("over the payload bound", {
            let len = u32::try_from(MAX_PAYLOAD_LEN + 1).unwrap();
            header(1, 0, 0, len, len)
        }),
        ("long name", header(1, 0, u16::MAX, 0, 0)),
        ("unknown flags", header(1, 0x80, 1, 1, 1)),
        ("raw differs from body", header(1, 0, 1, 10, 20)),
    ] {
        let (peak, ended) = read_all(&bytes);
        let error = ended.unwrap_err();
        assert!(
            matches!(error, WireError::Corrupt { offset: 0, .. }),
            "{what}: {error}"
        );
        assert!(peak < 64 << 10, "{what}: {peak} bytes allocated");
    }
}

#[test]
fn a_header_within_bounds_costs_what_arrived_not_what_it_claims() {
    // Claims 100 MiB of body but only 10 bytes follow: truncated, and the
    // reader allocated for what came, not for the claim.
    let len = 100 << 20;
    let mut bytes = header(1, 0, 1, len, len);
    bytes.extend(b"a0123456789");
    let (peak, ended) = read_all(&bytes);
    assert!(
        matches!(ended, Err(WireError::Truncated { offset: 0 })),
        "{ended:?}"
    );
    assert!(peak < 1 << 20, "{peak} bytes allocated");
    assert!(MAX_NAME_LEN < usize::from(u16::MAX));
}

#[test]
fn every_cut_of_a_valid_stream_ends_cleanly_or_truncated() {
    let stream = valid_stream();
    assert_eq!(read_all(&stream).1.unwrap(), 4);
    for end in 0..stream.len() {
        let (peak, ended) = read_all(&stream[..end]);
        match ended {
            Ok(_) | Err(WireError::Truncated { .. }) => {}
            Err(error) => panic!("cut at {end}: {error}"),
        }
        assert!(peak < 1 << 20, "cut at {end}: {peak} bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_nor_balloon(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (peak, _) = read_all(&bytes);
        prop_assert!(peak < 1 << 20, "{} bytes", peak);
    }

    #[test]
    fn random_headers_never_panic_nor_balloon(
        kind in 0u8..6,
        flags in any::<u8>(),
        name_len in any::<u16>(),
        body_len in any::<u32>(),
        raw_len in any::<u32>(),
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = header(kind, flags, name_len, body_len, raw_len);
        bytes.extend(tail);
        let (peak, _) = read_all(&bytes);
        // The largest legitimate allocation: a compressed body of the tail's
        // size expanding by LZ4's ratio.
        prop_assert!(peak < 2048 * 256 + (1 << 20), "{} bytes", peak);
    }

    #[test]
    fn valid_streams_with_flipped_bytes_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut stream = valid_stream();
        let at = at.index(stream.len());
        stream[at] = byte;
        let (peak, _) = read_all(&stream);
        prop_assert!(peak < 1 << 20, "{} bytes", peak);
    }
}
