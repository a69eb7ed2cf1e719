//! A growable array that moves into huge pages once it is large.
//!
//! The running totals of a year-long feed's levels take 2.4 MB, and a graph reads one total
//! per window edge, a thousand of them spread over the whole array: with fifty users
//! graphing at once nearly every read was a TLB miss on a 4 KiB page (see
//! [`crate::huge_pages`] for what a miss costs in a virtual machine). Such an array lives in
//! an anonymous map of its own, started on a huge page boundary (the map takes one huge page
//! more address space than it needs, never more memory), with the whole huge pages that the
//! values asked for fill advised `MADV_HUGEPAGE` before they are first touched. The room
//! left to grow keeps 4 KiB pages and costs memory only once written, so the array takes no
//! more memory than a `Vec` would. Small arrays, and every array where the kernel offers no
//! huge pages, stay in a `Vec`.

use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;

/// Values that any bit pattern of their size is a valid instance of, zeroes included (a
/// fresh map is zero-filled).
///
/// # Safety
/// Implement only for types made of integers and floats, with no padding, no references,
/// no invariants, and an alignment of at most 4 KiB (a page: maps are page-aligned).
pub unsafe trait Plain: Copy {}

/// A `Vec<T>` that moves into huge pages from [`crate::huge_pages::huge_page_size`] bytes.
pub struct HugeVec<T: Plain> {
    store: Store<T>,
}

enum Store<T> {
    Heap(Vec<T>),
    Mapped {
        map: MmapMut,
        /// Where the values start in the map: its first huge page boundary.
        offset: usize,
        /// Values written, from `offset`.
        len: usize,
    },
}

impl<T: Plain> Default for HugeVec<T> {
    fn default() -> Self {
        Self {
            store: Store::Heap(Vec::new()),
        }
    }
}

impl<T: Plain + std::fmt::Debug> std::fmt::Debug for HugeVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeVec")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl<T: Plain> HugeVec<T> {
    /// Whether the values live in a map of their own.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, Store::Mapped { .. })
    }

    fn capacity(&self) -> usize {
        match &self.store {
            Store::Heap(v) => v.capacity(),
            Store::Mapped { map, offset, .. } => (map.len() - offset) / size_of::<T>().max(1),
        }
    }

    /// Makes room for `additional` more values, which the caller means to fill.
    pub fn reserve(&mut self, additional: usize) {
        self.grow(additional, additional);
    }

    /// Makes room for `additional` more values, of which the next `filling` will be written
    /// soon: only their pages are advised for huge pages.
    fn grow(&mut self, additional: usize, filling: usize) {
        const { assert!(align_of::<T>() <= 4096) };
        let Some(need) = self.len().checked_add(additional) else {
            return self.reserve_heap(additional);
        };
        if need <= self.capacity() {
            return;
        }
        let size = size_of::<T>();
        let filled = self
            .len()
            .saturating_add(filling.min(additional))
            .saturating_mul(size);
        let mapped = match (crate::huge_pages::huge_page_size(), need.checked_mul(size)) {
            // An eighth more than asked: a feed keeps growing after its levels are built.
            (Some(huge), Some(bytes)) if bytes as u64 >= huge && size > 0 => bytes
                .checked_add(bytes / 8)
                .and_then(|room| Mapping::new(room, filled, huge))
                .filter(|m| m.values::<T>() >= need),
            _ => None,
        };
        match mapped {
            Some(m) => self.move_to(m),
            None => self.reserve_heap(additional),
        }
    }

    fn reserve_heap(&mut self, additional: usize) {
        if let Store::Heap(v) = &mut self.store {
            v.reserve(additional);
        } else {
            // A map that cannot grow into a larger one: back to the heap.
            let mut v = Vec::with_capacity(self.len().saturating_add(additional));
            v.extend_from_slice(self);
            self.store = Store::Heap(v);
        }
    }

    /// Moves the values into `m`, which the caller checked holds more than `len` of them.
    fn move_to(&mut self, mut m: Mapping) {
        let len = self.len();
        assert!(m.values::<T>() >= len, "a map too small for the values");
        let from: &[T] = self;
        // SAFETY: the map holds at least `len` values past `offset` (asserted above); the
        // offset is page-aligned, so aligned for `T` (`Plain`); the new map is not aliased.
        let to = unsafe {
            std::slice::from_raw_parts_mut(m.map.as_mut_ptr().add(m.offset).cast::<T>(), len)
        };
        to.copy_from_slice(from);
        self.store = Store::Mapped {
            map: m.map,
            offset: m.offset,
            len,
        };
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) {
        if self.len() == self.capacity() {
            // Room to grow is not advised: only the next value is certain to be written.
            self.grow(self.len().max(4), 1);
        }
        match &mut self.store {
            Store::Heap(v) => v.push(value),
            Store::Mapped { map, offset, len } => {
                assert!(*len < (map.len() - *offset) / size_of::<T>().max(1));
                // SAFETY: within the map past `offset` (asserted above), aligned as in
                // `move_to`, and `&mut self` makes the write unique.
                unsafe {
                    map.as_mut_ptr()
                        .add(*offset)
                        .cast::<T>()
                        .add(*len)
                        .write(value);
                }
                *len += 1;
            }
        }
    }
}

/// An anonymous map for an array, which starts at `offset` on a huge page boundary.
struct Mapping {
    map: MmapMut,
    offset: usize,
}

impl Mapping {
    /// Room for `bytes` bytes from a huge page boundary, with the whole huge pages of the
    /// first `filled` bytes advised for huge pages.
    fn new(bytes: usize, filled: usize, huge: u64) -> Option<Mapping> {
        let huge = usize::try_from(huge).ok()?;
        let room = bytes.checked_next_multiple_of(huge)?;
        // One huge page more, to start on a boundary wherever the kernel puts the map.
        let map = MmapMut::map_anon(room.checked_add(huge)?).ok()?;
        let offset = (map.as_ptr() as usize).next_multiple_of(huge) - map.as_ptr() as usize;
        let whole = filled.min(room) - filled.min(room) % huge;
        crate::huge_pages::advise_range(&map, offset, offset + whole);
        Some(Mapping { map, offset })
    }

    /// How many `T`s fit past the offset.
    fn values<T>(&self) -> usize {
        (self.map.len() - self.offset) / size_of::<T>().max(1)
    }
}

impl<T: Plain> Deref for HugeVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            // SAFETY: the `len` values from `offset` were written by `move_to` or `push`; the
            // offset is page-aligned and the map outlives the borrow.
            Store::Mapped { map, offset, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*offset).cast::<T>(), *len)
            },
        }
    }
}

impl<T: Plain> DerefMut for HugeVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            Store::Heap(v) => v,
            // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
            Store::Mapped { map, offset, len } => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().add(*offset).cast::<T>(), *len)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SAFETY: an integer.
    unsafe impl Plain for u64 {}

    #[test]
    fn small_arrays_stay_on_the_heap_and_large_ones_keep_every_value() {
        let mut v = HugeVec::<u64>::default();
        for k in 0..1000 {
            v.push(k);
        }
        assert!(!v.is_mapped());
        let n = 3 << 20;
        v.reserve(n);
        for k in 1000..n as u64 {
            v.push(k * 3);
        }
        assert_eq!(v.is_mapped(), crate::huge_pages::huge_page_size().is_some());
        assert_eq!(v.len(), n);
        assert!(
            v.iter()
                .enumerate()
                .all(|(k, &x)| x == if k < 1000 { k as u64 } else { k as u64 * 3 })
        );
        // Growing past the map's room moves everything to a larger one.
        let room = v.capacity() - v.len();
        for k in 0..room as u64 + 10 {
            v.push(k);
        }
        assert_eq!(v[n + room + 9], room as u64 + 9);
        assert_eq!(v[n - 1], (n as u64 - 1) * 3);
        v[5] = 7;
        assert_eq!(v[5], 7);
    }

    #[test]
    #[should_panic(expected = "capacity overflow")]
    fn asking_for_more_than_the_address_space_fails_loudly() {
        let mut v = HugeVec::<u64>::default();
        v.push(1);
        v.reserve(usize::MAX);
    }
}
