//! A knob track: an effect's settings over one render, piecewise constant. Segment `i` holds
//! its settings from sample `starts[i]` up to the next start (the first starts at 0). A constant
//! setting is a one-segment track; the streaming chain's glides become runs of one-sample
//! segments ([`crate::fx::trajectory`]). The taped kernels ([`super::effect::Effect::forward`],
//! [`super::effect::Effect::adjoint`]) take a track, carry their state across segment
//! boundaries as their streaming twins do across [`super::effect::Effect::set`], and return one
//! knob gradient per segment.

use std::ops::Range;

/// Piecewise-constant settings of one effect over a render (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Track<'a> {
    starts: &'a [usize],
    knobs: &'a [f64],
    width: usize,
}

/// The start of the only segment of a constant track.
const FROM_THE_START: &[usize] = &[0];

impl<'a> Track<'a> {
    /// One setting for the whole render.
    pub fn constant(knobs: &'a [f64]) -> Self {
        Track { starts: FROM_THE_START, knobs, width: knobs.len() }
    }

    /// Segments starting at `starts` (increasing, the first 0), segment `i` holding
    /// `knobs[i·w..(i+1)·w]` with `w = knobs.len() / starts.len()`.
    pub fn new(starts: &'a [usize], knobs: &'a [f64]) -> Self {
        assert!(starts.first() == Some(&0), "a track starts at sample 0");
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "segment starts increase");
        assert_eq!(knobs.len() % starts.len(), 0, "every segment has the same knobs");
        Track { starts, knobs, width: knobs.len() / starts.len() }
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.starts.len()
    }

    /// Knobs per segment.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Segment `i`'s settings.
    pub fn knobs(&self, i: usize) -> &'a [f64] {
        &self.knobs[i * self.width..(i + 1) * self.width]
    }

    /// Segment `i`'s samples within a render of `len` samples (empty past its end).
    pub fn range(&self, i: usize, len: usize) -> Range<usize> {
        let start = self.starts[i].min(len);
        let end = self.starts.get(i + 1).map_or(len, |&e| e.min(len));
        start..end
    }

    /// Every segment of a render of `len` samples: its index, samples and settings, in time
    /// order (reverse it for an adjoint).
    pub fn spans(&self, len: usize) -> impl DoubleEndedIterator<Item = (usize, Range<usize>, &'a [f64])> + '_ {
        (0..self.segments()).map(move |i| (i, self.range(i, len), self.knobs(i)))
    }
}

/// A quantity made once per segment of a track (the constants an adjoint needs), found by
/// segment or, for a sample, by a binary search over the segments' ends.
#[derive(Clone, Debug)]
pub struct PerSegment<C> {
    values: Vec<C>,
    ends: Vec<usize>,
}

impl<C> PerSegment<C> {
    /// `make(settings)` of every segment of `track` over a render of `len` samples.
    pub fn new(track: &Track<'_>, len: usize, make: impl Fn(&[f64]) -> C) -> Self {
        let values = (0..track.segments()).map(|i| make(track.knobs(i))).collect();
        let ends = (0..track.segments()).map(|i| track.range(i, len).end).collect();
        PerSegment { values, ends }
    }

    /// The segment index of sample `n`.
    pub fn segment_of(&self, n: usize) -> usize {
        self.ends.partition_point(|&e| e <= n).min(self.ends.len() - 1)
    }

    /// Segment `i`'s value.
    pub fn get(&self, i: usize) -> &C {
        &self.values[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_render_in_order() {
        let knobs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let t = Track::new(&[0, 4, 5], &knobs);
        assert_eq!((t.segments(), t.width()), (3, 2));
        let spans: Vec<_> = t.spans(10).map(|(i, r, k)| (i, r, k.to_vec())).collect();
        assert_eq!(spans, [(0, 0..4, vec![1.0, 2.0]), (1, 4..5, vec![3.0, 4.0]), (2, 5..10, vec![5.0, 6.0])]);
        assert_eq!(t.range(2, 3), 3..3);
        let sums = PerSegment::new(&t, 10, |k| k[0] + k[1]);
        assert_eq!((0..10).map(|n| sums.segment_of(n)).collect::<Vec<_>>(), [0, 0, 0, 0, 1, 2, 2, 2, 2, 2]);
        assert_eq!(
            (0..10).map(|n| *sums.get(sums.segment_of(n))).collect::<Vec<_>>(),
            [3.0, 3.0, 3.0, 3.0, 7.0, 11.0, 11.0, 11.0, 11.0, 11.0]
        );
        let c = Track::constant(&knobs[..2]);
        assert!(c.segments() == 1 && c.range(0, 7) == (0..7));
    }
}
