//! Huge pages behind the read maps of `.dat` files.
//!
//! A year graph reads a few bytes at each of about a thousand window edges spread over the
//! whole file. With 4 KiB pages every edge is its own TLB miss, and in a virtual machine a
//! miss walks two sets of page tables: on the 2-core test machine that walk was most of a
//! graph's time in storage. The kernel maps a file with huge pages only where its page cache
//! holds folios of that size, and it builds those only when it reads the file in through a
//! map advised with `MADV_HUGEPAGE`; the pages ynni appended a flush at a time sit in small
//! folios. So each huge-page-sized region of flushed data is regrouped once per process: its
//! clean cached pages are dropped (`POSIX_FADV_DONTNEED`, which keeps dirty and mapped pages,
//! so nothing written is lost and nothing is refetched early) and the next map is advised,
//! so the next fault in the region reads it back as one folio.
//!
//! The cost is one extra read of each region from disk after start-up (and one more as each
//! new region fills, every 2 MiB of slots), and a region stays resident as a whole once
//! touched. Nothing happens off Linux, when transparent huge pages are off
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `never`), or for files smaller than
//! one huge page. Whether a filesystem builds large folios is the kernel's choice (ext4
//! from Linux 6.16, XFS before it); where it does not, regrouping costs that one read and
//! the map keeps 4 KiB pages.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut};

/// The file range `[from, to)` left to regroup: the whole huge pages of the first `len`
/// bytes from `done` on, or `None` when there are none.
fn pending(done: u64, len: u64, huge: u64) -> Option<(u64, u64)> {
    let to = len - len % huge;
    (to > done).then_some((done, to))
}

/// Regroups the whole huge pages of `file`'s first `len` bytes past `done`, and advances
/// `done`. Call with no map of the file alive, since mapped pages are kept as they are.
pub fn regroup(file: &File, len: u64, done: &AtomicU64) {
    let Some(huge) = huge_page_size() else {
        return;
    };
    let Some((from, to)) = pending(done.load(Ordering::Relaxed), len, huge) else {
        return;
    };
    sys::drop_cached(file, from, to);
    done.store(to, Ordering::Relaxed);
}

/// Asks the kernel to back `map` with huge pages where its page cache allows.
pub fn advise(map: &Mmap) {
    if huge_page_size().is_some() {
        // Only a hint: a kernel that refuses it keeps 4 KiB pages.
        let _ = sys::advise(map);
    }
}

/// Asks the kernel to back the first `len` bytes of the anonymous `map` with huge pages.
pub fn advise_range(map: &MmapMut, len: usize) {
    if len > 0 && huge_page_size().is_some() {
        // Only a hint, as for `advise`.
        let _ = sys::advise_range(map, len);
    }
}

/// The huge page size in bytes when the kernel may back file maps with huge pages.
pub fn huge_page_size() -> Option<u64> {
    static SIZE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *SIZE.get_or_init(sys::huge_page_size)
}

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use memmap2::{Advice, Mmap, MmapMut};

    const THP: &str = "/sys/kernel/mm/transparent_hugepage";

    pub fn huge_page_size() -> Option<u64> {
        let enabled = std::fs::read_to_string(format!("{THP}/enabled")).ok()?;
        if enabled.contains("[never]") {
            return None;
        }
        let size = std::fs::read_to_string(format!("{THP}/hpage_pmd_size")).ok()?;
        size.trim().parse().ok().filter(|&s: &u64| s > 0)
    }

    pub fn drop_cached(file: &File, from: u64, to: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
            return;
        };
        // SAFETY: a plain syscall on a file descriptor this function borrows; it only
        // changes which pages the kernel keeps cached, never the file's contents.
        let rc = unsafe {
            libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED)
        };
        if rc != 0 {
            tracing::debug!(rc, "could not drop a feed file's cached pages");
        }
    }

    pub fn advise(map: &Mmap) -> std::io::Result<()> {
        map.advise(Advice::HugePage)
    }

    pub fn advise_range(map: &MmapMut, len: usize) -> std::io::Result<()> {
        map.advise_range(Advice::HugePage, 0, len)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::File;

    use memmap2::{Mmap, MmapMut};

    pub fn huge_page_size() -> Option<u64> {
        None
    }

    pub fn drop_cached(_file: &File, _from: u64, _to: u64) {}

    pub fn advise(_map: &Mmap) -> std::io::Result<()> {
        Ok(())
    }

    pub fn advise_range(_map: &MmapMut, _len: usize) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUGE: u64 = 2 << 20;

    #[test]
    fn only_whole_huge_pages_not_yet_regrouped_are_pending() {
        assert_eq!(pending(0, 0, HUGE), None);
        assert_eq!(pending(0, HUGE - 4, HUGE), None);
        assert_eq!(pending(0, HUGE, HUGE), Some((0, HUGE)));
        assert_eq!(pending(0, 3 * HUGE + 8, HUGE), Some((0, 3 * HUGE)));
        assert_eq!(pending(3 * HUGE, 3 * HUGE + 8, HUGE), None);
        assert_eq!(
            pending(3 * HUGE, 4 * HUGE, HUGE),
            Some((3 * HUGE, 4 * HUGE))
        );
        // A file replaced by a shorter one: nothing is regrouped twice or backwards.
        assert_eq!(pending(4 * HUGE, HUGE, HUGE), None);
    }

    #[test]
    fn regrouping_keeps_the_file_contents_and_advances_once() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.dat");
        let bytes: Vec<u8> = (0..(5 << 20) / 4)
            .flat_map(|k: u32| k.to_le_bytes())
            .collect();
        let mut f = File::create(&path).unwrap();
        // Half synced, half still dirty in the page cache: both must read back unchanged.
        f.write_all(&bytes[..bytes.len() / 2]).unwrap();
        f.sync_all().unwrap();
        f.write_all(&bytes[bytes.len() / 2..]).unwrap();
        let f = File::open(&path).unwrap();
        let done = AtomicU64::new(0);
        regroup(&f, bytes.len() as u64, &done);
        let expect = huge_page_size().map_or(0, |h| bytes.len() as u64 / h * h);
        assert_eq!(done.load(Ordering::Relaxed), expect);
        // SAFETY: the file is private to this test and not changed while mapped.
        let map = unsafe { Mmap::map(&f) }.unwrap();
        advise(&map);
        assert!(map[..] == bytes[..]);
        regroup(&f, bytes.len() as u64, &done);
        assert_eq!(done.load(Ordering::Relaxed), expect);
    }
}
