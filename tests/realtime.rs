//! The streaming chain allocates nothing while processing, whatever the block size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use afx::fx::{Chain, ChainKnobs, ChainSpec, EffectKind, Knobs};

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

/// Runs `knobs` through blocks of many sizes, changing to `other` on the way, and counts the
/// heap allocations made meanwhile.
fn allocations_while_processing(knobs: &ChainKnobs, other: &ChainKnobs) -> usize {
    let mut chain = Chain::<f32>::new(knobs, 48_000, 2).unwrap();
    let mut left: Vec<f32> = (0..20_000).map(|n| (n as f32 * 0.031).sin() * 0.8).collect();
    let mut right: Vec<f32> = (0..20_000).map(|n| (n as f32 * 0.017).sin() * 0.5).collect();
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
            chain.set_knobs(other).unwrap();
        }
        chain.process(&mut [&mut left[start..end], &mut right[start..end]]);
        start = end;
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(left.iter().chain(&right).all(|v| v.is_finite()));
    after - before
}

#[test]
fn processing_and_changing_knobs_do_not_allocate() {
    let mut knobs = Knobs::default();
    knobs.set("comp.threshold_db", -30.0).unwrap();
    knobs.set("eq.band2.gain_db", 6.0).unwrap();
    let mut other = knobs;
    other.set("comp.ratio", 8.0).unwrap();
    assert_eq!(allocations_while_processing(&knobs.chain_knobs(), &other.chain_knobs()), 0, "the default chain allocated");
    // Every effect, in one chain.
    let every = ChainSpec::new(EffectKind::ALL).unwrap();
    let knobs = ChainKnobs::defaults(every.clone());
    let mut other = knobs.clone();
    let set = ["gain.gain_db=12", "limiter.ceiling_db=-3", "gate.threshold_db=-40", "hpf.freq_hz=300", "width.width_pct=150"];
    other.apply_assignments(&set.map(String::from)).unwrap();
    assert_eq!(allocations_while_processing(&knobs, &other), 0, "a chain of every effect allocated");
}
