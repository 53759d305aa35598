//! The streaming chain allocates nothing while processing, whatever the block size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use afx::fx::{Chain, Knobs};

/// Counts allocations made on this process's heap.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn processing_and_changing_knobs_do_not_allocate() {
    let mut knobs = Knobs::default();
    knobs.set("comp.threshold_db", -30.0).unwrap();
    knobs.set("eq.band2.gain_db", 6.0).unwrap();
    let mut chain = Chain::<f32>::new(&knobs, 48_000, 2).unwrap();
    let mut left: Vec<f32> = (0..20_000).map(|n| (n as f32 * 0.031).sin() * 0.8).collect();
    let mut right: Vec<f32> = (0..20_000).map(|n| (n as f32 * 0.017).sin() * 0.5).collect();
    let mut other = knobs;
    other.set("comp.ratio", 8.0).unwrap();
    // Warm up once (feature detection caches its answer on first use).
    chain.process(&mut [&mut left[..64], &mut right[..64]]);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut start = 64;
    for (i, block) in [1usize, 17, 64, 255, 256, 257, 1024, 4096, 9000].iter().cycle().take(40).enumerate() {
        let end = (start + block).min(left.len());
        if start == end {
            break;
        }
        if i == 10 {
            chain.set_knobs(&other).unwrap();
        }
        chain.process(&mut [&mut left[start..end], &mut right[start..end]]);
        start = end;
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after, before, "the audio path allocated");
    assert!(left.iter().chain(&right).all(|v| v.is_finite()));
}
