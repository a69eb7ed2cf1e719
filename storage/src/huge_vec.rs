//! A growable array of plain values that, once it outgrows a huge page, lives in an
//! anonymous map advised for huge pages.
//!
//! The running totals of a graphed feed's levels (`levels`) are read at about a thousand
//! places spread over a few megabytes per graph. In 4 KiB pages each of those reads is a TLB
//! miss, and in a virtual machine a miss walks two sets of page tables; the allocator's pages
//! are small unless the kernel backs all anonymous memory with huge pages. Measured on the
//! 2-core test machine with 50 users graphing a year each (`benches/README.md`), huge pages
//! behind the totals took a fifth off the shards' time per graph.
//!
//! Up to one huge page of values the array is an ordinary `Vec`: a small feed's levels would
//! otherwise hold a whole huge page of memory for a few kilobytes. Above it, the values start
//! on a huge-page boundary inside the map (the kernel backs only aligned huge pages) and only
//! the whole huge pages of its room are advised: the last part stays in 4 KiB pages, so memory
//! is what the values use, as in a `Vec`, and most reads fall in huge pages. Where the kernel offers no huge
//! pages (`huge_pages::huge_page_size`), or a map cannot be made, it stays a `Vec`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use memmap2::{MmapMut, MmapOptions};

/// See the module docs.
pub struct HugeVec<T: Pod> {
    store: Store<T>,
    /// The huge page size, when values are to be kept in huge pages past it.
    huge: Option<usize>,
}

enum Store<T> {
    Heap(Vec<T>),
    /// Room for `cap` values from byte `start` of `map` (its first huge-page boundary), `len`
    /// of them used.
    Map {
        map: MmapMut,
        start: usize,
        cap: usize,
        len: usize,
    },
}

impl<T: Pod> Default for HugeVec<T> {
    fn default() -> Self {
        let huge = crate::huge_pages::huge_page_size().and_then(|s| usize::try_from(s).ok());
        Self::with_huge_page(huge)
    }
}

impl<T: Pod> HugeVec<T> {
    /// An empty array that moves to huge pages of `huge` bytes once it needs more than one.
    fn with_huge_page(huge: Option<usize>) -> Self {
        HugeVec {
            store: Store::Heap(Vec::new()),
            huge,
        }
    }

    /// How many values it holds room for.
    fn capacity(&self) -> usize {
        match &self.store {
            Store::Heap(v) => v.capacity(),
            Store::Map { cap, .. } => *cap,
        }
    }

    /// Makes room for `additional` more values.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len().saturating_add(additional);
        if self.capacity() >= needed || self.move_to_map(needed) {
            return;
        }
        if let Store::Heap(v) = &mut self.store {
            v.reserve(additional);
        }
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) {
        if self.len() == self.capacity() {
            // Doubling, as a `Vec` grows.
            self.reserve(self.len().max(4));
            if self.len() == self.capacity() {
                // A map that could not grow: carry on in a `Vec`.
                self.store = Store::Heap(self.to_vec());
            }
        }
        match &mut self.store {
            Store::Heap(v) => v.push(value),
            Store::Map {
                map,
                start,
                cap,
                len,
            } => {
                // Room was made above.
                room_mut::<T>(map, *start, *cap)[*len] = value;
                *len += 1;
            }
        }
    }

    /// Moves the values to a new map with room for at least `needed` values, if that many
    /// fill a huge page and the kernel gives the map. Returns whether they moved.
    fn move_to_map(&mut self, needed: usize) -> bool {
        let Some(huge) = self.huge else {
            return false;
        };
        if size_of::<T>() == 0 {
            return false;
        }
        let Some(bytes) = needed.checked_mul(size_of::<T>()) else {
            return false;
        };
        if bytes <= huge {
            return false;
        }
        // At least double what is held, as a `Vec` grows.
        let bytes = bytes.max(self.capacity().saturating_mul(2 * size_of::<T>()));
        // One huge page more than the values need, so that they can start on a huge-page
        // boundary: the kernel backs only aligned huge pages. The pages before the boundary
        // are never touched, so they take address space, not memory.
        let Some(Ok(mut map)) = bytes
            .checked_add(huge)
            .map(|len| MmapOptions::new().len(len).map_anon())
        else {
            return false;
        };
        let start = (huge - map.as_ptr() as usize % huge) % huge;
        // Only the whole huge pages: a partly used one would hold 2 MiB of memory for the
        // values' last few bytes, which 4 KiB pages hold in what they use.
        advise_huge(&map, start, bytes / huge * huge);
        let cap = bytes / size_of::<T>();
        let values: &[T] = self;
        let len = values.len();
        room_mut::<T>(&mut map, start, cap)[..len].copy_from_slice(values);
        self.store = Store::Map {
            map,
            start,
            cap,
            len,
        };
        true
    }
}

/// The room for `cap` values from byte `start` of `map`.
fn room<T: Pod>(map: &MmapMut, start: usize, cap: usize) -> &[T] {
    bytemuck::cast_slice(&map[start..start + cap * size_of::<T>()])
}

fn room_mut<T: Pod>(map: &mut MmapMut, start: usize, cap: usize) -> &mut [T] {
    bytemuck::cast_slice_mut(&mut map[start..start + cap * size_of::<T>()])
}

#[cfg(target_os = "linux")]
fn advise_huge(map: &MmapMut, start: usize, len: usize) {
    if len > 0 {
        // Only a hint: a kernel that refuses it keeps 4 KiB pages.
        let _ = map.advise_range(memmap2::Advice::HugePage, start, len);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_map: &MmapMut, _start: usize, _len: usize) {}

impl<T: Pod> Deref for HugeVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            Store::Map {
                map,
                start,
                cap,
                len,
            } => &room::<T>(map, *start, *cap)[..*len],
        }
    }
}

impl<T: Pod> DerefMut for HugeVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            Store::Heap(v) => v,
            Store::Map {
                map,
                start,
                cap,
                len,
            } => &mut room_mut::<T>(map, *start, *cap)[..*len],
        }
    }
}

impl<T: Pod> Clone for HugeVec<T> {
    fn clone(&self) -> Self {
        let mut copy = Self::with_huge_page(self.huge);
        copy.reserve(self.len());
        for &v in self.iter() {
            copy.push(v);
        }
        copy
    }
}

impl<T: Pod + PartialEq> PartialEq for HugeVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl<T: Pod> fmt::Debug for HugeVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.store {
            Store::Heap(_) => "heap",
            Store::Map { .. } => "huge pages",
        };
        write!(f, "HugeVec({} values, {place})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_map<T: Pod>(v: &HugeVec<T>) -> bool {
        matches!(v.store, Store::Map { .. })
    }

    #[test]
    fn values_survive_the_move_to_a_map_and_its_growth() {
        // A 4 KiB "huge page" (512 values), so that a small test crosses several.
        let mut v = HugeVec::<u64>::with_huge_page(Some(4096));
        for k in 0..511 {
            v.push(k * 3);
        }
        assert!(!in_map(&v), "below one huge page of values: {v:?}");
        for k in 511..5000 {
            v.push(k * 3);
        }
        assert!(in_map(&v), "{v:?}");
        assert_eq!(v.len(), 5000);
        assert!(v.iter().enumerate().all(|(k, &x)| x == k as u64 * 3));
        v[17] = 1;
        assert_eq!(v.get(17), Some(&1));
        assert_eq!(v.get(5000), None);
        let copy = v.clone();
        assert_eq!(copy, v);
        v[18] = 2;
        assert_ne!(copy, v);
    }

    #[test]
    fn a_reservation_past_a_huge_page_moves_at_once_to_a_page_boundary() {
        let mut v = HugeVec::<u64>::with_huge_page(Some(4096));
        v.push(9);
        v.reserve(511);
        assert!(!in_map(&v), "511 + 1 values fill exactly one page: {v:?}");
        v.reserve(512);
        match &v.store {
            Store::Map {
                map,
                start,
                cap,
                len,
            } => {
                assert_eq!(*len, 1);
                assert!(*cap >= 513);
                assert_eq!((map.as_ptr() as usize + start) % 4096, 0);
                assert!(start + cap * 8 <= map.len());
            }
            Store::Heap(_) => panic!("not moved: {v:?}"),
        }
        assert_eq!(&v[..], &[9]);
    }

    #[test]
    fn without_huge_pages_it_is_a_vec() {
        let mut v = HugeVec::<u64>::with_huge_page(None);
        v.reserve(1 << 20);
        for k in 0..(1 << 20) {
            v.push(k);
        }
        assert!(!in_map(&v));
        assert_eq!(v.len(), 1 << 20);
        assert_eq!(v[(1 << 20) - 1], (1 << 20) - 1);
    }

    #[test]
    fn a_system_sized_array_keeps_its_values() {
        let mut v = HugeVec::<[u64; 3]>::default();
        for k in 0..200_000u64 {
            v.push([k, k + 1, k + 2]);
        }
        assert_eq!(v.len(), 200_000);
        assert!(v.iter().enumerate().all(|(k, x)| x[0] == k as u64));
    }
}
