//! Huge pages behind the read maps of `.dat` files.
//!
//! A year graph reads a few bytes at each of about a thousand window edges spread over the
//! whole file. With 4 KiB pages every edge is its own TLB miss, and in a virtual machine a
//! miss walks two sets of page tables: on the 2-core test machine that walk was most of a
//! graph's time in storage. The kernel maps a file with huge pages only where its page cache
//! holds folios of that size, and it builds those only when it reads the file in through a
//! map advised with `MADV_HUGEPAGE`; the pages ynni appended a flush at a time sit in small
//! folios. So each huge-page-sized region of flushed data is regrouped once per process: its
//! clean cached pages are dropped (`POSIX_FADV_DONTNEED`: it starts writing dirty pages back
//! and leaves them, and mapped pages, cached, so nothing written is lost; a flush has synced
//! its slots anyway) and the next map is advised, so the next fault in the region reads it
//! back as one folio.
//!
//! The cost is one extra read of each region from disk after start-up (and one more as each
//! new region fills, every 2 MiB of slots), and a region stays resident as a whole once
//! touched. It is paid only where the page cache builds huge folios for files: XFS from
//! Linux 6.6, ext4 from 6.16. Nothing happens (no drop, no advice) on other filesystems or
//! older kernels, off Linux, when transparent huge pages are off
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `never`), or for files smaller than one
//! huge page.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

/// The file range `[from, to)` left to regroup: the whole huge pages of the first `len`
/// bytes from `done` on, or `None` when there are none.
fn pending(done: u64, len: u64, huge: u64) -> Option<(u64, u64)> {
    let to = len - len % huge;
    (to > done).then_some((done, to))
}

/// Whether maps of `file` should be backed by huge pages: the kernel offers them and builds
/// huge folios on its filesystem. When so, regroups the whole huge pages of its first `len`
/// bytes past `done` and advances `done`. Call with no map of the file alive, since mapped
/// pages are kept as they are.
pub fn regroup(file: &File, len: u64, done: &AtomicU64) -> bool {
    let Some(huge) = huge_page_size() else {
        return false;
    };
    if !sys::builds_huge_folios(file) {
        return false;
    }
    if let Some((from, to)) = pending(done.load(Ordering::Relaxed), len, huge) {
        sys::drop_cached(file, from, to);
        done.store(to, Ordering::Relaxed);
    }
    true
}

/// Asks the kernel to back `map` with huge pages where its page cache allows (call only when
/// [`regroup`] said so: elsewhere the advice would only make cold reads read ahead more).
pub fn advise(map: &Mmap) {
    // Only a hint: a kernel that refuses it keeps 4 KiB pages.
    let _ = sys::advise(map);
}

/// The huge page size in bytes when the kernel may back file maps with huge pages.
pub fn huge_page_size() -> Option<u64> {
    static SIZE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *SIZE.get_or_init(sys::huge_page_size)
}

/// Whether a filesystem of type `magic` (`statfs`'s `f_type`) builds huge folios for files
/// read through an advised map under kernel `release` (`uname -r`): ext4 since Linux 6.16,
/// XFS since 6.6 (large folios from 5.18, but until 6.6 a write into one made the whole folio
/// dirty, so rewriting one old slot would write 2 MiB back).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn builds_huge_folios(magic: u64, release: &str) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    let version = match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => return false,
    };
    match magic {
        EXT4 => version >= (6, 16),
        XFS => version >= (6, 6),
        _ => false,
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use memmap2::{Advice, Mmap};

    const THP: &str = "/sys/kernel/mm/transparent_hugepage";

    pub fn huge_page_size() -> Option<u64> {
        let enabled = std::fs::read_to_string(format!("{THP}/enabled")).ok()?;
        if enabled.contains("[never]") {
            return None;
        }
        let size = std::fs::read_to_string(format!("{THP}/hpage_pmd_size")).ok()?;
        size.trim().parse().ok().filter(|&s: &u64| s > 0)
    }

    pub fn builds_huge_folios(file: &File) -> bool {
        static RELEASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let release = RELEASE.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|r| r.trim().to_owned())
        });
        let Some(release) = release else {
            return false;
        };
        // SAFETY: `fstatfs` fills the zeroed struct it is given from a descriptor this
        // function borrows; nothing else is touched.
        let magic = unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            if libc::fstatfs(file.as_raw_fd(), &mut st) != 0 {
                return false;
            }
            st.f_type
        };
        // `f_type`'s integer type differs between targets; magic numbers fit in 32 bits.
        #[allow(clippy::unnecessary_cast)]
        let magic = magic as u64 & 0xFFFF_FFFF;
        super::builds_huge_folios(magic, release)
    }

    pub fn drop_cached(file: &File, from: u64, to: u64) {
        // `off_t` is 32 bits on some 32-bit targets: a region past it is left as it is.
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(from),
            libc::off_t::try_from(to - from),
        ) else {
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
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::File;

    use memmap2::Mmap;

    pub fn huge_page_size() -> Option<u64> {
        None
    }

    pub fn builds_huge_folios(_file: &File) -> bool {
        false
    }

    pub fn drop_cached(_file: &File, _from: u64, _to: u64) {}

    pub fn advise(_map: &Mmap) -> std::io::Result<()> {
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
    fn only_filesystems_and_kernels_with_huge_file_folios_are_regrouped() {
        let (ext4, xfs, btrfs) = (0xEF53, 0x5846_5342, 0x9123_683E);
        assert!(builds_huge_folios(ext4, "6.18.0-1-amd64"));
        assert!(builds_huge_folios(ext4, "6.16.0"));
        assert!(builds_huge_folios(ext4, "7.0.1"));
        assert!(!builds_huge_folios(ext4, "6.15.9"));
        assert!(!builds_huge_folios(ext4, "6.6.74+rpt-rpi-v8"));
        assert!(!builds_huge_folios(ext4, "5.19.0"));
        assert!(builds_huge_folios(xfs, "6.6.0"));
        assert!(builds_huge_folios(xfs, "6.12.57+deb13-amd64"));
        assert!(!builds_huge_folios(xfs, "6.1.0-28-amd64"));
        assert!(!builds_huge_folios(xfs, "5.18.0"));
        assert!(!builds_huge_folios(btrfs, "6.18.0"));
        assert!(!builds_huge_folios(ext4, "garbage"));
        assert!(!builds_huge_folios(ext4, ""));
    }

    /// Dropping cached pages, whatever the filesystem, never loses what was written: synced
    /// pages are read back from the disk, dirty ones were kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn dropping_cached_pages_keeps_synced_and_dirty_contents() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.dat");
        let bytes: Vec<u8> = (0..(5 << 20) / 4)
            .flat_map(|k: u32| k.to_le_bytes())
            .collect();
        let mut f = File::create(&path).unwrap();
        f.write_all(&bytes[..bytes.len() / 2]).unwrap();
        f.sync_all().unwrap();
        f.write_all(&bytes[bytes.len() / 2..]).unwrap();
        let f = File::open(&path).unwrap();
        sys::drop_cached(&f, 0, bytes.len() as u64);
        assert!(std::fs::read(&path).unwrap() == bytes);
        // SAFETY: the file is private to this test and not changed while mapped.
        let map = unsafe { Mmap::map(&f) }.unwrap();
        advise(&map);
        assert!(map[..] == bytes[..]);
    }

    #[test]
    fn regrouping_advances_once_where_it_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.dat");
        std::fs::write(&path, vec![7u8; 5 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        let done = AtomicU64::new(0);
        let applies = regroup(&f, 5 << 20, &done);
        assert_eq!(
            applies,
            huge_page_size().is_some() && sys::builds_huge_folios(&f)
        );
        let expect = match huge_page_size() {
            Some(h) if applies => (5 << 20) / h * h,
            _ => 0,
        };
        assert_eq!(done.load(Ordering::Relaxed), expect);
        assert_eq!(regroup(&f, 5 << 20, &done), applies);
        assert_eq!(done.load(Ordering::Relaxed), expect);
    }
}
