//! Hints that memory will be read soon.
//!
//! An averaged read of a year touches about a thousand places far apart in a feed's file (the
//! ragged ends of its windows). When many users' files are read in turn, each of them is a
//! cache and TLB miss, and reading them one after another waits for each miss in turn. Asking
//! for the next few while summing the current one lets the CPU fetch them together.
//!
//! Only a hint: where the CPU has no prefetch instruction that stable Rust exposes, these do
//! nothing and results are the same.

/// Bytes per cache line on the CPUs ynni runs on.
const LINE: usize = 64;

/// Asks for every cache line of `bytes`.
#[inline]
pub fn slice(bytes: &[u8]) {
    let mut offset = 0;
    while offset < bytes.len() {
        line(bytes[offset..].as_ptr());
        offset += LINE;
    }
    if let Some(last) = bytes.last() {
        line(last);
    }
}

/// Asks for the cache line holding `value`.
#[inline]
pub fn value<T>(value: &T) {
    line(std::ptr::from_ref(value).cast());
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn line(p: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch never faults and reads nothing into the program; `p` comes from a
    // live reference, and SSE (which provides the instruction) is part of every x86-64 CPU.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn line(_p: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_accept_any_slice_and_value() {
        let data: Vec<u8> = (0..=255).collect();
        slice(&data);
        slice(&data[3..70]);
        slice(&[]);
        value(&data[200]);
        assert_eq!(data.len(), 256);
    }
}
