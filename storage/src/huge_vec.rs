//! A growable array that moves into huge pages once it is large.
//!
//! The running totals of a year-long feed's levels take 2.4 MB, and a graph reads one total
//! per window edge, a thousand of them spread over the whole array: with fifty users
//! graphing at once nearly every read was a TLB miss on a 4 KiB page (see
//! [`crate::huge_pages`] for what a miss costs in a virtual machine). Such an array lives in
//! its own anonymous map, sized to whole huge pages so the kernel aligns it, with the whole
//! huge pages its values fill advised `MADV_HUGEPAGE` before they are first touched. The
//! rest of the map (room to grow) keeps 4 KiB pages and costs memory only once written, so
//! the array takes no more memory than a `Vec` would. Small arrays, and every array where
//! the kernel offers no huge pages, stay in a `Vec`.

use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;

/// Values that any bit pattern of their size is a valid instance of, zeroes included (a
/// fresh map is zero-filled).
///
/// # Safety
/// Implement only for types made of integers and floats, with no padding, no references
/// and no invariants.
pub unsafe trait Plain: Copy {}

/// A `Vec<T>` that moves into huge pages from [`crate::huge_pages::huge_page_size`] bytes.
pub struct HugeVec<T: Plain> {
    store: Store<T>,
}

enum Store<T> {
    Heap(Vec<T>),
    Mapped {
        map: MmapMut,
        /// Values written, from the map's start.
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
            Store::Mapped { map, .. } => map.len() / size_of::<T>().max(1),
        }
    }

    /// Makes room for `additional` more values.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len().saturating_add(additional);
        if need <= self.capacity() {
            return;
        }
        let bytes = need.saturating_mul(size_of::<T>());
        match crate::huge_pages::huge_page_size() {
            Some(huge) if bytes as u64 >= huge && size_of::<T>() > 0 => {
                // An eighth more than asked: a feed keeps growing after its levels are built.
                if let Some(map) = map_for(bytes + bytes / 8, bytes, huge) {
                    self.move_to(map);
                    return;
                }
                self.reserve_heap(additional);
            }
            _ => self.reserve_heap(additional),
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

    fn move_to(&mut self, mut map: MmapMut) {
        let len = self.len();
        let from: &[T] = self;
        // SAFETY: `map` holds at least `len` values (see `map_for`'s caller: its size covers
        // the need, which is at least `len`), is page-aligned, so aligned for `T`, and is
        // not aliased; `T: Plain` makes its zero bytes valid values.
        let to = unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), len) };
        to.copy_from_slice(from);
        self.store = Store::Mapped { map, len };
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) {
        if self.len() == self.capacity() {
            self.reserve(self.len().max(4));
        }
        match &mut self.store {
            Store::Heap(v) => v.push(value),
            Store::Mapped { map, len } => {
                // SAFETY: `reserve` left room for one more value: `len < capacity`.
                unsafe { map.as_mut_ptr().cast::<T>().add(*len).write(value) };
                *len += 1;
            }
        }
    }
}

/// An anonymous map of at least `bytes` bytes rounded up to whole huge pages (so that the
/// kernel places it on a huge page boundary), with the whole huge pages of its first
/// `filled` bytes advised for huge pages.
fn map_for(bytes: usize, filled: usize, huge: u64) -> Option<MmapMut> {
    let huge = usize::try_from(huge).ok()?;
    let size = bytes.checked_next_multiple_of(huge)?;
    let map = MmapMut::map_anon(size).ok()?;
    crate::huge_pages::advise_range(&map, filled - filled % huge);
    Some(map)
}

impl<T: Plain> Deref for HugeVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            // SAFETY: the first `len` values of the map were written by `move_to` or `push`;
            // the map is page-aligned and outlives the borrow.
            Store::Mapped { map, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().cast::<T>(), *len)
            },
        }
    }
}

impl<T: Plain> DerefMut for HugeVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            Store::Heap(v) => v,
            // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
            Store::Mapped { map, len } => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), *len)
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
}
