//! Line charts rendered straight to PNG bytes, for training loss curves, EQ
//! magnitude responses and compressor curves.
//!
//! Everything is drawn on an in-memory RGB buffer: lines are anti-aliased
//! here (distance-to-segment coverage), text uses the bitmap fonts that
//! `embedded-graphics` ships (public-domain X11 fonts compiled into the
//! crate), and the `png` crate encodes the result. That keeps the module free
//! of system libraries (no fontconfig/freetype) and of font files.

use std::convert::Infallible;

use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::iso_8859_1::{FONT_8X13, FONT_9X15, FONT_10X20};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, RgbColor, Size};
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::{Drawable, Pixel};

/// One named line of `(x, y)` data points, drawn in the given order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How data values map to positions along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Equal distances for equal ratios; non-positive values are skipped.
    Log10,
}

/// A line chart: labels, axis scales and the series to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
}

/// Renders `chart` as a `width_px` x `height_px` RGB PNG and returns the file
/// bytes, so the caller decides how to write them (e.g. atomically).
///
/// Points that are not finite, or not positive on a `Log10` axis, are skipped
/// and break the line there. A chart without drawable points still renders
/// (empty axes with a "no data" note) so a plot written early in training
/// does not fail.
///
/// # Errors
///
/// A message when the size is too small to hold the layout or too large to
/// allocate sensibly, when the data span overflows `f64`, or when PNG
/// encoding fails.
pub fn render_png(chart: &Chart, width_px: u32, height_px: u32) -> Result<Vec<u8>, String> {
    let (canvas, _) = render(chart, width_px, height_px)?;
    canvas.encode_png()
}

/// Renders `charts` side by side, each `width_px_each` x `height_px`, as one PNG.
///
/// # Errors
/// As [`render_png`], for any of the charts.
pub fn render_row_png(charts: &[Chart], width_px_each: u32, height_px: u32) -> Result<Vec<u8>, String> {
    let canvases =
        charts.iter().map(|chart| render(chart, width_px_each, height_px).map(|(canvas, _)| canvas)).collect::<Result<Vec<_>, _>>()?;
    let width_px =
        width_px_each.checked_mul(charts.len() as u32).filter(|&w| w > 0).ok_or("a row needs at least one chart and a width that fits")?;
    let mut row = Canvas::new(width_px, height_px, BACKGROUND);
    let stride = 3 * width_px_each as usize;
    for y in 0..height_px as usize {
        for (k, canvas) in canvases.iter().enumerate() {
            let start = 3 * (y * width_px as usize) + k * stride;
            row.rgb[start..start + stride].copy_from_slice(&canvas.rgb[y * stride..(y + 1) * stride]);
        }
    }
    row.encode_png()
}

/// Line colours, assigned to series in order (cycled past the end).
const SERIES_COLOURS: [[u8; 3]; 8] =
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127]];
const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [25, 25, 25];
const NOTE_TEXT: [u8; 3] = [140, 140, 140];
const FRAME: [u8; 3] = [80, 80, 80];
const GRID_MAJOR: [u8; 3] = [218, 218, 218];
const GRID_MINOR: [u8; 3] = [240, 240, 240];

const TITLE_FONT: &MonoFont<'static> = &FONT_10X20;
const LABEL_FONT: &MonoFont<'static> = &FONT_9X15;
const TICK_FONT: &MonoFont<'static> = &FONT_8X13;

/// Series stroke width; 2 px reads well at typical 800-1200 px image widths.
const LINE_WIDTH_PX: f64 = 2.0;
/// Outer margin and spacing between layout blocks.
const PAD_PX: i32 = 10;
const TICK_LEN_PX: i32 = 5;
/// Space between a tick mark and its label.
const TICK_LABEL_GAP_PX: i32 = 4;
/// Minimum free space between neighbouring tick labels.
const MIN_LABEL_GAP_PX: f64 = 12.0;
/// Densest tick spacing tried before label-overlap checks thin it further.
const MIN_X_TICK_SPACING_PX: f64 = 70.0;
const MIN_Y_TICK_SPACING_PX: f64 = 40.0;
/// Log axes get 2..9 minor grid lines only when a decade is at least this long.
const MIN_DECADE_FOR_MINOR_GRID_PX: f64 = 40.0;
/// Room reserved right of the plot when there is no legend, so the last x
/// tick label is not cut off.
const RIGHT_OVERHANG_PX: i32 = 28;
const LEGEND_SWATCH_PX: i32 = 24;
const LEGEND_ROW_PX: i32 = 18;
/// The legend may take at most this fraction of the image width.
const MAX_LEGEND_WIDTH_FRACTION: f64 = 0.3;
/// Fraction of the y data span added above and below so lines do not touch
/// the frame. The x range stays tight so curves span the full width.
const Y_PADDING_FRACTION: f64 = 0.05;
const MIN_PLOT_SIDE_PX: i32 = 40;
/// Caps the RGB buffer (3 bytes per pixel) at 192 MiB.
const MAX_PIXELS: u64 = 64 << 20;

/// Pixel bounds of the data area, inclusive, in image coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PlotRect {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
}

impl PlotRect {
    fn width_px(&self) -> f64 {
        f64::from(self.right - self.left)
    }

    fn height_px(&self) -> f64 {
        f64::from(self.bottom - self.top)
    }

    fn x_px(&self, fraction: f64) -> f64 {
        f64::from(self.left) + fraction * self.width_px()
    }

    fn y_px(&self, fraction: f64) -> f64 {
        f64::from(self.bottom) - fraction * self.height_px()
    }
}

/// The visible range of one axis, in transformed units (log10 of the value
/// on a `Log10` axis), so that positions are linear in these units.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl Axis {
    /// Maps a data value to transformed units, or `None` if it cannot be shown.
    fn transform(scale: Scale, value: f64) -> Option<f64> {
        match scale {
            Scale::Linear => value.is_finite().then_some(value),
            Scale::Log10 => (value.is_finite() && value > 0.0).then(|| value.log10()),
        }
    }

    /// Range covering `positions` (transformed units), widened by
    /// `padding_fraction` of the span on both sides. An empty set gets a unit
    /// range and a constant one a range around the value, so the mapping
    /// never divides by zero.
    fn fit(scale: Scale, positions: &[f64], padding_fraction: f64) -> Result<Axis, String> {
        let lo = positions.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = positions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if positions.is_empty() {
            (0.0, 1.0)
        } else if hi > lo {
            let pad = (hi - lo) * padding_fraction;
            (lo - pad, hi + pad)
        } else {
            let half_width = match scale {
                Scale::Linear if lo != 0.0 => lo.abs() * 0.1,
                Scale::Linear => 1.0,
                Scale::Log10 => 0.5,
            };
            (lo - half_width, hi + half_width)
        };
        if (hi - lo).is_finite() && hi > lo {
            Ok(Axis { scale, lo, hi })
        } else {
            Err(format!("data range {lo}..{hi} is too wide to plot"))
        }
    }

    /// Position of a transformed value as a fraction of the axis length.
    fn fraction(&self, position: f64) -> f64 {
        (position - self.lo) / (self.hi - self.lo)
    }
}

/// A labelled tick at a position in transformed units.
#[derive(Clone, Debug, PartialEq)]
struct Tick {
    position: f64,
    label: String,
}

/// Labelled ticks plus unlabelled minor grid positions (transformed units).
#[derive(Clone, Debug, Default, PartialEq)]
struct Ticks {
    major: Vec<Tick>,
    minor: Vec<f64>,
}

/// Picks ticks for `axis` drawn over `length_px` pixels: the densest
/// "nice" set whose labels, `extent_px` long along the axis, do not overlap.
fn choose_ticks(axis: &Axis, length_px: f64, min_spacing_px: f64, extent_px: &dyn Fn(&str) -> f64) -> Ticks {
    let fits = |ticks: &[Tick]| {
        ticks.windows(2).all(|pair| {
            let distance_px = (axis.fraction(pair[1].position) - axis.fraction(pair[0].position)).abs() * length_px;
            distance_px >= (extent_px(&pair[0].label) + extent_px(&pair[1].label)) / 2.0 + MIN_LABEL_GAP_PX
        })
    };
    let max_ticks = (length_px / min_spacing_px).max(2.0);
    match axis.scale {
        Scale::Linear => Ticks { major: linear_ticks(axis.lo, axis.hi, max_ticks, &|v| v, &fits), minor: Vec::new() },
        // Less than a decade shows at most a few powers-of-ten marks, so
        // plain decimal steps over the value range read better.
        Scale::Log10 if axis.hi - axis.lo < 1.0 => {
            Ticks { major: linear_ticks(10f64.powf(axis.lo), 10f64.powf(axis.hi), max_ticks, &f64::log10, &fits), minor: Vec::new() }
        }
        Scale::Log10 => log_ticks(axis, length_px, &fits),
    }
}

/// Ticks at multiples of a 1-2-5 step over the value range `lo..=hi`,
/// widening the step until `fits`; `position` maps a value to transformed
/// units.
fn linear_ticks(lo: f64, hi: f64, max_ticks: f64, position: &dyn Fn(f64) -> f64, fits: &dyn Fn(&[Tick]) -> bool) -> Vec<Tick> {
    let magnitude = lo.abs().max(hi.abs());
    let mut step = nice_step_at_least((hi - lo) / max_ticks);
    loop {
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        let ticks: Vec<Tick> = (first..=last)
            .map(|k| {
                let value = k as f64 * step;
                Tick { position: position(value), label: format_tick(value, step, magnitude) }
            })
            .collect();
        if ticks.len() <= 2 || fits(&ticks) {
            return ticks;
        }
        step = next_nice_step(step);
    }
}

/// Ticks at m x 10^k for mantissas 1..9, then 1, 2, 3, 5, then 1, 2, 5, then 1, then every
/// n-th decade: the first set whose labels fit. Unlabelled 2..9 positions
/// become minor grid lines when decades are long enough to show them.
fn log_ticks(axis: &Axis, length_px: f64, fits: &dyn Fn(&[Tick]) -> bool) -> Ticks {
    const MANTISSA_SETS: [&[f64]; 4] = [&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &[1.0, 2.0, 3.0, 5.0], &[1.0, 2.0, 5.0], &[1.0]];
    let first_decade = axis.lo.floor() as i32;
    let last_decade = axis.hi.ceil() as i32;
    let in_range = |position: f64| position >= axis.lo - 1e-9 && position <= axis.hi + 1e-9;
    let ticks_for = |mantissas: &[f64], decade_stride: i32| -> Vec<Tick> {
        (first_decade..=last_decade)
            .filter(|decade| decade.rem_euclid(decade_stride) == 0)
            .flat_map(|decade| mantissas.iter().map(move |&m| (m, decade)))
            .map(|(m, decade)| (m * 10f64.powi(decade), f64::from(decade) + m.log10()))
            .filter(|&(_, position)| in_range(position))
            .map(|(value, position)| Tick { position, label: format_tick(value, 10f64.powf(position.floor()), value) })
            .collect()
    };
    let major = MANTISSA_SETS
        .iter()
        .map(|mantissas| ticks_for(mantissas, 1))
        .chain((2..=(last_decade - first_decade).max(2)).map(|stride| ticks_for(&[1.0], stride)))
        .find(|ticks| ticks.len() <= 2 || fits(ticks))
        .unwrap_or_default();
    let decade_px = length_px / (axis.hi - axis.lo);
    let minor = if decade_px >= MIN_DECADE_FOR_MINOR_GRID_PX {
        ticks_for(&MANTISSA_SETS[0][1..], 1)
            .into_iter()
            .map(|tick| tick.position)
            .filter(|position| major.iter().all(|tick| (tick.position - position).abs() > 1e-9))
            .collect()
    } else {
        Vec::new()
    };
    Ticks { major, minor }
}

/// Smallest 1, 2 or 5 x 10^k that is at least `raw`.
fn nice_step_at_least(raw: f64) -> f64 {
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * base).find(|&step| step >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * base)
}

/// The next larger 1-2-5 step after `step`.
fn next_nice_step(step: f64) -> f64 {
    let base = 10f64.powf((step.log10() + 1e-9).floor());
    let mantissa = (step / base).round();
    let next = if mantissa < 1.5 {
        2.0
    } else if mantissa < 3.5 {
        5.0
    } else {
        10.0
    };
    next * base
}

/// Formats a tick value with just enough digits to tell ticks `step` apart.
/// `magnitude` (the largest absolute value on the axis) picks one notation
/// for the whole axis: scientific for very small or large numbers, a k/M
/// suffix from 1000 (so 20 kHz reads "20k"), plain decimals otherwise.
fn format_tick(value: f64, step: f64, magnitude: f64) -> String {
    if value.abs() < step * 1e-6 {
        return "0".to_string();
    }
    if !(1e-3..1e9).contains(&magnitude) {
        let digits = (value.abs().log10().floor() - (step.log10() + 1e-9).floor()).max(0.0) as usize;
        return format!("{value:.digits$e}");
    }
    let (divisor, suffix) = if magnitude >= 1e6 {
        (1e6, "M")
    } else if magnitude >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let decimals = (-(step / divisor).log10() - 1e-9).ceil().max(0.0) as usize;
    format!("{:.decimals$}{suffix}", value / divisor)
}

/// RGB8 image buffer that embedded-graphics text can be drawn onto.
struct Canvas {
    width_px: u32,
    height_px: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width_px: u32, height_px: u32, colour: [u8; 3]) -> Canvas {
        let rgb = colour.repeat(width_px as usize * height_px as usize);
        Canvas { width_px, height_px, rgb }
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        let inside = x >= 0 && y >= 0 && (x as u32) < self.width_px && (y as u32) < self.height_px;
        inside.then(|| 3 * (y as usize * self.width_px as usize + x as usize))
    }

    /// Mixes `colour` into pixel (x, y) with opacity `alpha` (0..=1);
    /// pixels outside the image are ignored.
    fn blend(&mut self, x: i32, y: i32, colour: [u8; 3], alpha: f32) {
        if let Some(i) = self.index(x, y) {
            for (channel, &target) in self.rgb[i..i + 3].iter_mut().zip(&colour) {
                *channel = (f32::from(*channel) * (1.0 - alpha) + f32::from(target) * alpha).round() as u8;
            }
        }
    }

    fn set(&mut self, x: i32, y: i32, colour: [u8; 3]) {
        if let Some(i) = self.index(x, y) {
            self.rgb[i..i + 3].copy_from_slice(&colour);
        }
    }

    fn horizontal_line(&mut self, x0: i32, x1: i32, y: i32, colour: [u8; 3]) {
        (x0..=x1).for_each(|x| self.set(x, y, colour));
    }

    fn vertical_line(&mut self, x: i32, y0: i32, y1: i32, colour: [u8; 3]) {
        (y0..=y1).for_each(|y| self.set(x, y, colour));
    }

    /// Draws `text` with its top-left corner at (x, y).
    fn text(&mut self, text: &str, x: i32, y: i32, font: &MonoFont, colour: [u8; 3]) {
        let style = MonoTextStyle::new(font, rgb888(colour));
        let Ok(_) = Text::with_baseline(text, Point::new(x, y), style, Baseline::Top).draw(self);
    }

    /// Draws `text` turned 90° anticlockwise (reading upwards), its
    /// unrotated top-left corner placed at (x, y): the glyph tops face left
    /// and the text runs up from y.
    fn text_upwards(&mut self, text: &str, x: i32, y: i32, font: &MonoFont, colour: [u8; 3]) {
        let style = MonoTextStyle::new(font, rgb888(colour));
        let mut rotated = RotatedAnticlockwise { canvas: self, origin_x: x, origin_y: y };
        let Ok(_) = Text::with_baseline(text, Point::zero(), style, Baseline::Top).draw(&mut rotated);
    }

    /// Strokes each polyline in `polylines_px` (pixel-centre coordinates)
    /// with anti-aliased edges, clipped to `clip`. Coverage is accumulated
    /// as a per-pixel maximum before blending so joints and dense, noisy
    /// curves do not darken where segments overlap; one buffer serves all
    /// polylines of a series, however many gaps split it. A polyline of a
    /// single point becomes a dot.
    fn stroke_polylines(&mut self, polylines_px: &[Vec<(f64, f64)>], colour: [u8; 3], width_px: f64, clip: PlotRect) {
        let clip_width = (clip.right - clip.left + 1) as usize;
        let mut coverage = vec![0f32; clip_width * (clip.bottom - clip.top + 1) as usize];
        let half_width = width_px / 2.0;
        let reach = half_width + 1.0;
        let segments = polylines_px.iter().flat_map(|points| {
            let single_point = (points.len() == 1).then(|| (points[0], points[0]));
            points.windows(2).map(|pair| (pair[0], pair[1])).chain(single_point)
        });
        for (a, b) in segments {
            let x0 = ((a.0.min(b.0) - reach).floor() as i32).max(clip.left);
            let x1 = ((a.0.max(b.0) + reach).ceil() as i32).min(clip.right);
            let y0 = ((a.1.min(b.1) - reach).floor() as i32).max(clip.top);
            let y1 = ((a.1.max(b.1) + reach).ceil() as i32).min(clip.bottom);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let distance = distance_to_segment((f64::from(x), f64::from(y)), a, b);
                    let alpha = (half_width + 0.5 - distance).clamp(0.0, 1.0) as f32;
                    let cell = &mut coverage[(y - clip.top) as usize * clip_width + (x - clip.left) as usize];
                    *cell = cell.max(alpha);
                }
            }
        }
        for (i, &alpha) in coverage.iter().enumerate() {
            if alpha > 0.0 {
                let x = clip.left + (i % clip_width) as i32;
                let y = clip.top + (i / clip_width) as i32;
                self.blend(x, y, colour, alpha);
            }
        }
    }

    fn encode_png(&self) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.width_px, self.height_px);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| format!("PNG header: {e}"))?;
        writer.write_image_data(&self.rgb).map_err(|e| format!("PNG data: {e}"))?;
        writer.finish().map_err(|e| format!("PNG finish: {e}"))?;
        Ok(bytes)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, colour) in pixels {
            self.set(point.x, point.y, [colour.r(), colour.g(), colour.b()]);
        }
        Ok(())
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width_px, self.height_px)
    }
}

/// Draw target that turns everything 90° anticlockwise about an origin on
/// the canvas, for the vertical y-axis label.
struct RotatedAnticlockwise<'a> {
    canvas: &'a mut Canvas,
    origin_x: i32,
    origin_y: i32,
}

impl DrawTarget for RotatedAnticlockwise<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, colour) in pixels {
            let (x, y) = (self.origin_x + point.y, self.origin_y - point.x);
            self.canvas.set(x, y, [colour.r(), colour.g(), colour.b()]);
        }
        Ok(())
    }
}

impl OriginDimensions for RotatedAnticlockwise<'_> {
    fn size(&self) -> Size {
        Size::new(self.canvas.height_px, self.canvas.width_px)
    }
}

fn rgb888(colour: [u8; 3]) -> Rgb888 {
    Rgb888::new(colour[0], colour[1], colour[2])
}

/// Euclidean distance from point `p` to the segment `a`-`b`.
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length_sq = dx * dx + dy * dy;
    let t = if length_sq > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length_sq).clamp(0.0, 1.0) } else { 0.0 };
    (p.0 - (a.0 + t * dx)).hypot(p.1 - (a.1 + t * dy))
}

/// Pixel width of `text` in the monospaced `font`.
fn text_width_px(text: &str, font: &MonoFont) -> i32 {
    let count = text.chars().count() as i32;
    let advance = (font.character_size.width + font.character_spacing) as i32;
    (count * advance - font.character_spacing as i32).max(0)
}

/// Pixel height of one line of text in `font`.
fn text_height_px(font: &MonoFont) -> i32 {
    font.character_size.height as i32
}

/// Shortens `text` to at most `max_width_px` in `font`, marking the cut with "..".
fn truncate_to_width(text: &str, max_width_px: i32, font: &MonoFont) -> String {
    if text_width_px(text, font) <= max_width_px {
        return text.to_string();
    }
    let advance = (font.character_size.width + font.character_spacing) as i32;
    let keep = (max_width_px / advance - 2).max(0) as usize;
    text.chars().take(keep).chain("..".chars()).collect()
}

/// Splits a series into runs of drawable points, in transformed units;
/// a skipped point ends the current run so gaps stay visible.
fn drawable_runs(series: &Series, x_scale: Scale, y_scale: Scale) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in &series.points {
        match (Axis::transform(x_scale, x), Axis::transform(y_scale, y)) {
            (Some(x), Some(y)) => runs.last_mut().expect("runs starts non-empty").push((x, y)),
            _ if runs.last().is_some_and(|run| !run.is_empty()) => runs.push(Vec::new()),
            _ => {}
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

/// Draws the whole chart and returns the canvas with the plot rectangle
/// (the latter lets tests locate data positions in the image).
fn render(chart: &Chart, width_px: u32, height_px: u32) -> Result<(Canvas, PlotRect), String> {
    if width_px == 0 || height_px == 0 || u64::from(width_px) * u64::from(height_px) > MAX_PIXELS {
        return Err(format!("unsupported image size {width_px}x{height_px}"));
    }
    let series_runs: Vec<Vec<Vec<(f64, f64)>>> =
        chart.series.iter().map(|series| drawable_runs(series, chart.x_scale, chart.y_scale)).collect();
    let all_points = || series_runs.iter().flatten().flatten();
    let xs: Vec<f64> = all_points().map(|p| p.0).collect();
    let ys: Vec<f64> = all_points().map(|p| p.1).collect();
    let x_axis = Axis::fit(chart.x_scale, &xs, 0.0)?;
    let y_axis = Axis::fit(chart.y_scale, &ys, Y_PADDING_FRACTION)?;

    let (width, height) = (width_px as i32, height_px as i32);
    let tick_height = text_height_px(TICK_FONT);
    let label_height = text_height_px(LABEL_FONT);

    // Legend column right of the plot, so it never hides data.
    let legend_entries: Vec<(String, [u8; 3])> = {
        let max_name_px = (f64::from(width) * MAX_LEGEND_WIDTH_FRACTION) as i32 - LEGEND_SWATCH_PX - 2 * PAD_PX;
        chart
            .series
            .iter()
            .enumerate()
            .filter(|(_, series)| !series.name.is_empty())
            .map(|(i, series)| {
                let name = truncate_to_width(&series.name, max_name_px, TICK_FONT);
                (name, SERIES_COLOURS[i % SERIES_COLOURS.len()])
            })
            .collect()
    };
    let legend_width =
        legend_entries.iter().map(|(name, _)| LEGEND_SWATCH_PX + 6 + text_width_px(name, TICK_FONT)).max().map_or(0, |w| w + 2 * PAD_PX);

    // Vertical layout first: the y ticks depend only on the plot height,
    // and their label widths then set the left margin.
    let title_block = if chart.title.is_empty() { 0 } else { text_height_px(TITLE_FONT) + PAD_PX };
    let x_label_block = if chart.x_label.is_empty() { 0 } else { label_height + 6 };
    let top = PAD_PX + title_block + tick_height / 2;
    let bottom = height - 1 - (PAD_PX + x_label_block + tick_height + TICK_LABEL_GAP_PX + TICK_LEN_PX);
    if bottom - top < MIN_PLOT_SIDE_PX {
        return Err(format!("image height {height_px} px is too small for the chart"));
    }
    let plot_height_px = f64::from(bottom - top);
    let y_ticks = choose_ticks(&y_axis, plot_height_px, MIN_Y_TICK_SPACING_PX, &|_| f64::from(tick_height));
    let y_tick_label_width = y_ticks.major.iter().map(|t| text_width_px(&t.label, TICK_FONT)).max().unwrap_or(0);
    let y_label_block = if chart.y_label.is_empty() { 0 } else { label_height + 8 };
    let left = PAD_PX + y_label_block + y_tick_label_width + TICK_LABEL_GAP_PX + TICK_LEN_PX;
    let right = width - 1 - legend_width.max(RIGHT_OVERHANG_PX);
    if right - left < MIN_PLOT_SIDE_PX {
        return Err(format!("image width {width_px} px is too small for the chart"));
    }
    let plot = PlotRect { left, top, right, bottom };
    let x_ticks = choose_ticks(&x_axis, plot.width_px(), MIN_X_TICK_SPACING_PX, &|label| f64::from(text_width_px(label, TICK_FONT)));

    let mut canvas = Canvas::new(width_px, height_px, BACKGROUND);
    let x_px = |position: f64| plot.x_px(x_axis.fraction(position)).round() as i32;
    let y_px = |position: f64| plot.y_px(y_axis.fraction(position)).round() as i32;

    // Grid, minor lines first so major ones stay visible where both meet.
    for &position in &x_ticks.minor {
        canvas.vertical_line(x_px(position), top, bottom, GRID_MINOR);
    }
    for &position in &y_ticks.minor {
        canvas.horizontal_line(left, right, y_px(position), GRID_MINOR);
    }
    for tick in &x_ticks.major {
        canvas.vertical_line(x_px(tick.position), top, bottom, GRID_MAJOR);
    }
    for tick in &y_ticks.major {
        canvas.horizontal_line(left, right, y_px(tick.position), GRID_MAJOR);
    }
    canvas.horizontal_line(left, right, top, FRAME);
    canvas.horizontal_line(left, right, bottom, FRAME);
    canvas.vertical_line(left, top, bottom, FRAME);
    canvas.vertical_line(right, top, bottom, FRAME);

    // Tick marks and labels, clamped so edge labels stay inside the image.
    for tick in &x_ticks.major {
        let x = x_px(tick.position);
        canvas.vertical_line(x, bottom + 1, bottom + TICK_LEN_PX, FRAME);
        let label_width = text_width_px(&tick.label, TICK_FONT);
        let label_x = (x - label_width / 2).clamp(0, (width - label_width).max(0));
        canvas.text(&tick.label, label_x, bottom + TICK_LEN_PX + TICK_LABEL_GAP_PX, TICK_FONT, TEXT);
    }
    for tick in &y_ticks.major {
        let y = y_px(tick.position);
        canvas.horizontal_line(left - TICK_LEN_PX, left - 1, y, FRAME);
        let label_x = left - TICK_LEN_PX - TICK_LABEL_GAP_PX - text_width_px(&tick.label, TICK_FONT);
        let label_y = (y - tick_height / 2).clamp(0, (height - tick_height).max(0));
        canvas.text(&tick.label, label_x, label_y, TICK_FONT, TEXT);
    }

    for (i, runs) in series_runs.iter().enumerate() {
        let polylines_px: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|run| run.iter().map(|&(x, y)| (plot.x_px(x_axis.fraction(x)), plot.y_px(y_axis.fraction(y)))).collect())
            .collect();
        let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
        canvas.stroke_polylines(&polylines_px, colour, LINE_WIDTH_PX, plot);
    }
    if xs.is_empty() {
        let note = "no data";
        let x = (left + right - text_width_px(note, LABEL_FONT)) / 2;
        canvas.text(note, x, (top + bottom - label_height) / 2, LABEL_FONT, NOTE_TEXT);
    }

    if !chart.title.is_empty() {
        let x = ((left + right - text_width_px(&chart.title, TITLE_FONT)) / 2).max(PAD_PX);
        canvas.text(&chart.title, x, PAD_PX, TITLE_FONT, TEXT);
    }
    if !chart.x_label.is_empty() {
        let x = ((left + right - text_width_px(&chart.x_label, LABEL_FONT)) / 2).max(0);
        canvas.text(&chart.x_label, x, height - PAD_PX - label_height, LABEL_FONT, TEXT);
    }
    if !chart.y_label.is_empty() {
        let y = ((top + bottom + text_width_px(&chart.y_label, LABEL_FONT)) / 2).min(height - 1);
        canvas.text_upwards(&chart.y_label, PAD_PX, y, LABEL_FONT, TEXT);
    }
    for (row, (name, colour)) in legend_entries.iter().enumerate() {
        let x = right + PAD_PX;
        let y = top + row as i32 * LEGEND_ROW_PX;
        let swatch_y = f64::from(y + tick_height / 2);
        let swatch = vec![(f64::from(x), swatch_y), (f64::from(x + LEGEND_SWATCH_PX), swatch_y)];
        let legend_area = PlotRect { left: x - 2, top: y, right: x + LEGEND_SWATCH_PX + 2, bottom: y + tick_height };
        canvas.stroke_polylines(&[swatch], *colour, LINE_WIDTH_PX, legend_area);
        canvas.text(name, x + LEGEND_SWATCH_PX + 6, y, TICK_FONT, TEXT);
    }
    Ok((canvas, plot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes PNG bytes into (width, height, RGB8 pixels).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("valid PNG header");
        let mut rgb = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut rgb).expect("valid PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        rgb.truncate(info.buffer_size());
        (info.width, info.height, rgb)
    }

    fn pixel(rgb: &[u8], width: u32, x: i32, y: i32) -> [u8; 3] {
        let i = 3 * (y as usize * width as usize + x as usize);
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    fn test_chart(x_scale: Scale, y_scale: Scale, series: Vec<Series>) -> Chart {
        Chart { title: "Test chart".to_string(), x_label: "x".to_string(), y_label: "y".to_string(), x_scale, y_scale, series }
    }

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series { name: name.to_string(), points: points.to_vec() }
    }

    /// Renders through the public PNG path and also returns the plot
    /// rectangle of the same layout.
    fn render_decoded(chart: &Chart, width: u32, height: u32) -> (Vec<u8>, PlotRect) {
        let bytes = render_png(chart, width, height).expect("render succeeds");
        let (decoded_width, decoded_height, rgb) = decode(&bytes);
        assert_eq!((decoded_width, decoded_height), (width, height));
        let (_, plot) = render(chart, width, height).expect("render succeeds");
        (rgb, plot)
    }

    /// Mean y of pixels of exactly `colour` in column `x` within the plot.
    fn mean_y_of_colour(rgb: &[u8], width: u32, plot: PlotRect, x: i32, colour: [u8; 3]) -> Option<f64> {
        let ys: Vec<i32> = (plot.top..=plot.bottom).filter(|&y| pixel(rgb, width, x, y) == colour).collect();
        (!ys.is_empty()).then(|| ys.iter().map(|&y| f64::from(y)).sum::<f64>() / ys.len() as f64)
    }

    /// Side by side, each chart's pixels are exactly its own rendering, shifted.
    #[test]
    fn a_row_holds_each_chart_unchanged() {
        let left = test_chart(Scale::Linear, Scale::Linear, vec![series("a", &[(0.0, 1.0), (1.0, 2.0)])]);
        let right = test_chart(Scale::Log10, Scale::Linear, vec![series("b", &[(20.0, -3.0), (2e4, 6.0)])]);
        let (width, height) = (300, 200);
        let (row_width, row_height, row) = decode(&render_row_png(&[left.clone(), right.clone()], width, height).unwrap());
        assert_eq!((row_width, row_height), (2 * width, height));
        for (k, chart) in [left, right].iter().enumerate() {
            let (_, _, alone) = decode(&render_png(chart, width, height).unwrap());
            for y in (0..height as i32).step_by(7) {
                for x in (0..width as i32).step_by(5) {
                    assert_eq!(pixel(&row, row_width, x + k as i32 * width as i32, y), pixel(&alone, width, x, y));
                }
            }
        }
        assert!(render_row_png(&[], width, height).is_err());
    }

    #[test]
    fn image_has_requested_size() {
        let chart = test_chart(Scale::Linear, Scale::Linear, vec![series("a", &[(0.0, 1.0), (1.0, 2.0)])]);
        for (width, height) in [(640, 400), (1201, 333)] {
            let (w, h, _) = decode(&render_png(&chart, width, height).unwrap());
            assert_eq!((w, h), (width, height));
        }
    }

    #[test]
    fn horizontal_line_at_mid_range_lands_mid_plot() {
        // The second series sets the y range to 0..1 (a vertical line at the
        // left edge); the first is a horizontal line at y = 0.5.
        let chart = test_chart(
            Scale::Linear,
            Scale::Linear,
            vec![series("mid", &[(0.0, 0.5), (1.0, 0.5)]), series("range", &[(0.0, 0.0), (0.0, 1.0)])],
        );
        let (width, height) = (800, 500);
        let (rgb, plot) = render_decoded(&chart, width, height);
        let x = plot.left + (plot.right - plot.left) * 3 / 4;
        let mean_y = mean_y_of_colour(&rgb, width, plot, x, SERIES_COLOURS[0]).expect("line drawn");
        let expected_y = f64::from(plot.top + plot.bottom) / 2.0;
        assert!((mean_y - expected_y).abs() <= 1.5, "line at {mean_y}, expected {expected_y}");
    }

    #[test]
    fn log_x_axis_places_1_khz_at_log_fraction() {
        let chart = test_chart(
            Scale::Log10,
            Scale::Linear,
            vec![series("1 kHz", &[(1000.0, 0.0), (1000.0, 1.0)]), series("range", &[(20.0, 0.0), (20_000.0, 1.0)])],
        );
        let (width, height) = (900, 500);
        let (rgb, plot) = render_decoded(&chart, width, height);
        let y = (plot.top + plot.bottom) / 2;
        let xs: Vec<i32> = (plot.left..=plot.right).filter(|&x| pixel(&rgb, width, x, y) == SERIES_COLOURS[0]).collect();
        assert!(!xs.is_empty(), "1 kHz line drawn");
        let mean_x = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64;
        let fraction = (1000f64 / 20.0).log10() / (20_000f64 / 20.0).log10();
        let expected_x = plot.x_px(fraction);
        assert!((mean_x - expected_x).abs() <= 1.5, "line at {mean_x}, expected {expected_x}");
    }

    #[test]
    fn constant_series_is_drawn_mid_plot() {
        let chart = test_chart(Scale::Linear, Scale::Linear, vec![series("flat", &[(0.0, 3.0), (10.0, 3.0)])]);
        let (width, height) = (600, 400);
        let (rgb, plot) = render_decoded(&chart, width, height);
        let x = (plot.left + plot.right) / 2;
        let mean_y = mean_y_of_colour(&rgb, width, plot, x, SERIES_COLOURS[0]).expect("line drawn");
        assert!((mean_y - f64::from(plot.top + plot.bottom) / 2.0).abs() <= 1.5);
    }

    #[test]
    fn empty_inputs_render_without_panic() {
        let empty_series = vec![series("nothing", &[])];
        for series in [Vec::new(), empty_series] {
            for scale in [Scale::Linear, Scale::Log10] {
                let (w, h, _) = decode(&render_png(&test_chart(scale, scale, series.clone()), 300, 200).unwrap());
                assert_eq!((w, h), (300, 200));
            }
        }
        let untitled = Chart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
        };
        assert!(render_png(&untitled, 300, 200).is_ok());
    }

    #[test]
    fn too_small_or_zero_size_is_an_error() {
        let chart = test_chart(Scale::Linear, Scale::Linear, Vec::new());
        assert!(render_png(&chart, 0, 100).is_err());
        assert!(render_png(&chart, 60, 40).is_err());
    }

    #[test]
    fn non_finite_and_non_positive_log_points_are_skipped() {
        let points = [(0.0, 0.0), (0.5, f64::NAN), (f64::INFINITY, 1.0), (1.0, 1.0), (f64::NAN, f64::NEG_INFINITY)];
        let chart = test_chart(Scale::Linear, Scale::Linear, vec![series("noisy", &points)]);
        let (width, height) = (600, 400);
        let (rgb, plot) = render_decoded(&chart, width, height);
        // The finite points alone set the range: (0, 0) and (1, 1) sit at
        // the plot corners, drawn as dots because the NaN breaks the line.
        let y_pad_fraction = Y_PADDING_FRACTION / (1.0 + 2.0 * Y_PADDING_FRACTION);
        let dot_at = |x_fraction: f64, y_fraction: f64| {
            let (x, y) = (plot.x_px(x_fraction).round() as i32, plot.y_px(y_fraction).round() as i32);
            pixel(&rgb, width, x, y) == SERIES_COLOURS[0]
        };
        assert!(dot_at(0.0, y_pad_fraction));
        assert!(dot_at(1.0, 1.0 - y_pad_fraction));
        let middle = (plot.left + plot.right) / 2;
        assert_eq!(mean_y_of_colour(&rgb, width, plot, middle, SERIES_COLOURS[0]), None, "no line across the gap");

        let log_chart = test_chart(Scale::Linear, Scale::Log10, vec![series("loss", &[(0.0, -1.0), (1.0, 0.0), (2.0, 0.1), (3.0, 0.01)])]);
        assert!(render_png(&log_chart, 600, 400).is_ok());
    }

    #[test]
    fn drawable_runs_split_at_skipped_points() {
        let s = series("s", &[(1.0, 1.0), (2.0, 0.0), (3.0, 3.0), (4.0, 4.0), (5.0, f64::NAN)]);
        let runs = drawable_runs(&s, Scale::Linear, Scale::Log10);
        assert_eq!(runs, vec![vec![(1.0, 0.0)], vec![(3.0, 3f64.log10()), (4.0, 4f64.log10())]]);
    }

    #[test]
    fn tick_labels_are_short_and_readable() {
        assert_eq!(format_tick(20_000.0, 10_000.0, 20_000.0), "20k");
        assert_eq!(format_tick(2_500.0, 500.0, 10_000.0), "2.5k");
        assert_eq!(format_tick(0.30000000000000004, 0.1, 1.0), "0.3");
        assert_eq!(format_tick(-24.0, 6.0, 60.0), "-24");
        assert_eq!(format_tick(1e-17, 0.1, 1.0), "0");
        assert_eq!(format_tick(0.0002, 0.0001, 0.0005), "2e-4");
    }

    #[test]
    fn log_ticks_label_audio_range_without_overlap() {
        let axis = Axis { scale: Scale::Log10, lo: 20f64.log10(), hi: 20_000f64.log10() };
        let width = |label: &str| f64::from(text_width_px(label, TICK_FONT));
        let wide = choose_ticks(&axis, 700.0, MIN_X_TICK_SPACING_PX, &width);
        let labels: Vec<&str> = wide.major.iter().map(|t| t.label.as_str()).collect();
        let expected = ["20", "30", "50", "100", "200", "300", "500", "1k", "2k", "3k", "5k", "10k", "20k"];
        assert_eq!(labels, expected);
        assert!(!wide.minor.is_empty());

        // A narrow axis thins the labels instead of letting them overlap.
        let narrow = choose_ticks(&axis, 200.0, MIN_X_TICK_SPACING_PX, &width);
        let labels: Vec<&str> = narrow.major.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["100", "1k", "10k"]);
    }
}
