//! Line charts rendered straight to PNG bytes, for training loss curves, EQ
//! magnitude responses and compressor curves.
//!
//! The drawing is done by `plotters` on its bitmap backend, into an in-memory
//! RGB buffer that the `png` crate encodes; callers get the bytes and decide
//! how to write them (e.g. atomically). Text is set in DejaVu Sans, whose
//! font file the `dejavu` crate compiles into the binary and which is handed
//! to plotters' pure-Rust `ab_glyph` text support. So rendering needs no
//! system fonts or libraries (no fontconfig/freetype) and looks the same on
//! every machine.
//!
//! What this module adds on top of plotters: points that cannot be shown are
//! skipped and break the line; ranges never collapse (a constant series or an
//! empty chart still gets axes); log-10 axes tick at 1-2-5 style multiples
//! with "20k"-style labels (plotters' own log axis labels only powers of
//! ten); the legend sits beside the plot so it never hides data; and a size
//! the layout cannot fit is an error rather than a panic.

use std::fmt::Display;
use std::ops::Range;
use std::sync::OnceLock;

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

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
/// allocate sensibly, when the data span overflows `f64`, or when drawing or
/// PNG encoding fails.
pub fn render_png(chart: &Chart, width_px: u32, height_px: u32) -> Result<Vec<u8>, String> {
    render_row_png(std::slice::from_ref(chart), width_px, height_px)
}

/// Renders `charts` side by side, each `width_px_each` x `height_px`, as one PNG.
///
/// # Errors
/// As [`render_png`], for any of the charts, and when `charts` is empty.
pub fn render_row_png(charts: &[Chart], width_px_each: u32, height_px: u32) -> Result<Vec<u8>, String> {
    let (image, _) = render_row(charts, width_px_each, height_px)?;
    image.encode_png()
}

/// Line colours, assigned to series in order (cycled past the end).
const SERIES_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const BACKGROUND: RGBColor = RGBColor(255, 255, 255);
const TEXT: RGBColor = RGBColor(25, 25, 25);
const NOTE_TEXT: RGBColor = RGBColor(140, 140, 140);
const FRAME: RGBColor = RGBColor(80, 80, 80);
const GRID_MAJOR: RGBColor = RGBColor(218, 218, 218);
const GRID_MINOR: RGBColor = RGBColor(240, 240, 240);

/// The family the embedded font is registered under; plotters' defaults ask for it too.
const FONT_FAMILY: FontFamily<'static> = FontFamily::SansSerif;
const TITLE_FONT_PX: f64 = 22.0;
const LABEL_FONT_PX: f64 = 18.0;
const TICK_FONT_PX: f64 = 16.0;

/// Series stroke width; 2 px reads well at typical 800-1200 px image widths.
const LINE_WIDTH_PX: u32 = 2;
/// Outer margin and spacing between layout blocks.
const PAD_PX: i32 = 10;
/// Tick mark length; plotters puts tick labels twice this far from the axis.
const TICK_LEN_PX: i32 = 5;
/// Space between tick labels and an axis description.
const DESC_GAP_PX: i32 = 6;
/// Minimum free space between neighbouring tick labels.
const MIN_LABEL_GAP_PX: f64 = 12.0;
/// Densest tick spacing tried before label-overlap checks thin it further.
const MIN_X_TICK_SPACING_PX: i32 = 70;
const MIN_Y_TICK_SPACING_PX: i32 = 40;
/// Log axes get 2..9 minor grid lines only when a decade is at least this long.
const MIN_DECADE_FOR_MINOR_GRID_PX: f64 = 40.0;
/// Room reserved right of the plot when there is no legend, so the last x
/// tick label is not cut off.
const RIGHT_OVERHANG_PX: i32 = 28;
const LEGEND_SWATCH_PX: i32 = 24;
const LEGEND_SWATCH_GAP_PX: i32 = 6;
const LEGEND_ROW_PX: i32 = 22;
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
    #[cfg(test)]
    fn x_px(&self, fraction: f64) -> f64 {
        f64::from(self.left) + fraction * f64::from(self.right - self.left)
    }

    #[cfg(test)]
    fn y_px(&self, fraction: f64) -> f64 {
        f64::from(self.bottom) - fraction * f64::from(self.bottom - self.top)
    }
}

/// The visible range of one axis, in transformed units (log10 of the value
/// on a `Log10` axis), so that positions are linear in these units. It is
/// the plotters coordinate of its axis: data is handed over transformed, and
/// the axis picks its own ticks.
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
            Err(format!("data range {lo:.3e}..{hi:.3e} is too wide to plot"))
        }
    }

    /// Whether ticks are placed at round values of a linear step: always on a
    /// linear axis, and on a log axis spanning less than a decade, where
    /// powers-of-ten marks would be too few to read.
    /// (Only while those values are representable: not near `f64::MAX`.)
    fn linear_ticks(&self) -> bool {
        self.scale == Scale::Linear || (self.hi - self.lo < 1.0 && 10f64.powf(self.hi).is_finite() && 10f64.powf(self.lo) > 0.0)
    }

    /// Tick position sets (transformed units) from densest to sparsest: on
    /// linear ticks, multiples of a 1-2-5 step (plotters' choice) with at
    /// most `max_ticks` ticks; otherwise m x 10^k for mantissas 1..9, then
    /// 1, 2, 3, 5, then 1, 2, 5, then 1, then every n-th decade, however
    /// many (their spacing is uneven, so only the label check can judge).
    fn tick_candidates(&self, max_ticks: usize) -> Vec<Vec<f64>> {
        let mut candidates: Vec<Vec<f64>> = if self.linear_ticks() {
            let (value_range, position): (_, fn(f64) -> f64) = match self.scale {
                Scale::Linear => (self.lo..self.hi, |v| v),
                Scale::Log10 => (10f64.powf(self.lo)..10f64.powf(self.hi), f64::log10),
            };
            let coord = RangedCoordf64::from(value_range);
            (2..=max_ticks.max(2)).rev().map(|n| coord.key_points(n).into_iter().map(position).collect()).collect()
        } else {
            let decades = (self.hi.ceil() - self.lo.floor()) as i32;
            LOG_MANTISSA_SETS
                .iter()
                .map(|mantissas| self.log_positions(mantissas, 1))
                .chain((2..=decades.max(2)).map(|stride| self.log_positions(&[1.0], stride)))
                .collect()
        };
        candidates.dedup();
        candidates
    }

    /// Positions of m x 10^k within the axis, for the given mantissas and
    /// every `decade_stride`-th decade k.
    fn log_positions(&self, mantissas: &[f64], decade_stride: i32) -> Vec<f64> {
        let (first, last) = (self.lo.floor() as i32, self.hi.ceil() as i32);
        (first..=last)
            .filter(|decade| decade.rem_euclid(decade_stride) == 0)
            .flat_map(|decade| mantissas.iter().map(move |m| f64::from(decade) + m.log10()))
            .filter(|&position| position >= self.lo - 1e-9 && position <= self.hi + 1e-9)
            .collect()
    }

    /// Labels for ticks at `positions` (transformed units), with just enough
    /// digits to tell them apart.
    fn tick_labels(&self, positions: &[f64]) -> Vec<String> {
        let value = |position: f64| if self.scale == Scale::Log10 { 10f64.powf(position) } else { position };
        if !self.linear_ticks() {
            // Each log tick is labelled on its own: 20, 300, 5k.
            return positions.iter().map(|&p| format_tick(value(p), 10f64.powf((p + 1e-9).floor()), value(p))).collect();
        }
        let values: Vec<f64> = positions.iter().map(|&p| value(p)).collect();
        let step = match values[..] {
            [first, second, ..] => second - first,
            _ => value(self.hi) - value(self.lo),
        };
        let magnitude = value(self.lo).abs().max(value(self.hi).abs());
        values.iter().map(|&v| format_tick(v, step, magnitude)).collect()
    }

    /// Position of a transformed value as a fraction of the axis length.
    fn fraction(&self, position: f64) -> f64 {
        (position - self.lo) / (self.hi - self.lo)
    }
}

const LOG_MANTISSA_SETS: [&[f64]; 4] = [&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &[1.0, 2.0, 3.0, 5.0], &[1.0, 2.0, 5.0], &[1.0]];

/// Labelled ticks plus unlabelled minor grid positions (transformed units).
#[derive(Clone, Debug, Default, PartialEq)]
struct Ticks {
    major: Vec<(f64, String)>,
    minor: Vec<f64>,
}

impl Ticks {
    /// The label of the major tick at `position`, as plotters asks for it.
    fn label_at(&self, position: f64) -> String {
        let nearest = self.major.iter().find(|(tick, _)| (tick - position).abs() <= 1e-9 * (1.0 + tick.abs()));
        nearest.map_or_else(String::new, |(_, label)| label.clone())
    }
}

/// Picks ticks for `axis` drawn over `length_px` pixels: the densest
/// candidate set, no denser than one per `min_spacing_px`, whose labels,
/// `extent_px` long along the axis, keep `MIN_LABEL_GAP_PX` apart. Log axes
/// with decades long enough also get 2..9 minor grid lines.
fn choose_ticks(
    axis: &Axis,
    length_px: i32,
    min_spacing_px: i32,
    extent_px: &dyn Fn(&str) -> Result<i32, String>,
) -> Result<Ticks, String> {
    let max_ticks = (length_px / min_spacing_px).max(2) as usize;
    let candidates = axis.tick_candidates(max_ticks);
    let mut major = Vec::new();
    for positions in &candidates {
        let labels = axis.tick_labels(positions);
        let extents = labels.iter().map(|label| extent_px(label)).collect::<Result<Vec<_>, _>>()?;
        let fits = (1..positions.len()).all(|i| {
            let distance_px = (axis.fraction(positions[i]) - axis.fraction(positions[i - 1])).abs() * f64::from(length_px);
            distance_px >= f64::from(extents[i] + extents[i - 1]) / 2.0 + MIN_LABEL_GAP_PX
        });
        major = positions.iter().copied().zip(labels).collect();
        if positions.len() <= 2 || fits {
            break;
        }
    }
    let decade_px = f64::from(length_px) / (axis.hi - axis.lo);
    let minor = if axis.linear_ticks() || decade_px < MIN_DECADE_FOR_MINOR_GRID_PX {
        Vec::new()
    } else {
        axis.log_positions(LOG_MANTISSA_SETS[0], 1)
    };
    Ok(Ticks { major, minor })
}

/// What plotters draws an axis with: its range and the ticks chosen for it.
/// Positions are linear in transformed units.
struct AxisCoord {
    axis: Axis,
    ticks: Ticks,
}

impl Ranged for AxisCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, position: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.axis.lo..self.axis.hi).map(position, limit)
    }

    /// The chosen ticks whatever the hint: the labelled ones for the bold
    /// grid, and the minor ones too for the light grid (plotters draws the
    /// bold lines over the light ones).
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let major = self.ticks.major.iter().map(|(position, _)| *position);
        match hint.weight() {
            KeyPointWeight::Bold => major.collect(),
            KeyPointWeight::Any => major.chain(self.ticks.minor.iter().copied()).collect(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.axis.lo..self.axis.hi
    }
}

/// Formats a tick value with just enough digits to tell ticks `step` apart.
/// `magnitude` (the largest absolute value on the axis) picks one notation
/// for the whole axis: scientific for very small or large numbers, a k/M
/// suffix for long ones (so 20 kHz reads "20k"), plain decimals otherwise.
/// Digits are capped at what an `f64` holds (a step that vanishes next to
/// the values would otherwise ask for thousands).
fn format_tick(value: f64, step: f64, magnitude: f64) -> String {
    const MAX_TICK_DIGITS: f64 = 16.0;
    if value.abs() < step * 1e-6 {
        return "0".to_string();
    }
    if !(1e-3..1e9).contains(&magnitude) {
        let digits = (value.abs().log10().floor() - (step.log10() + 1e-9).floor()).clamp(0.0, MAX_TICK_DIGITS) as usize;
        return format!("{value:.digits$e}");
    }
    // A suffix once numbers get long, or when every step is a whole number
    // of thousands: "20k", but "200, 400, .., 1800" rather than "0.2k".
    let (divisor, suffix) = if magnitude >= 1e7 || (magnitude >= 1e6 && step >= 1e6) {
        (1e6, "M")
    } else if magnitude >= 1e4 || (magnitude >= 1e3 && step >= 1e3) {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let decimals = (-(step / divisor).log10() - 1e-9).ceil().clamp(0.0, MAX_TICK_DIGITS) as usize;
    format!("{:.decimals$}{suffix}", value / divisor)
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

/// An RGB8 image, row by row.
struct Image {
    width_px: u32,
    height_px: u32,
    rgb: Vec<u8>,
}

impl Image {
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

type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;

fn drawing_error(error: impl Display) -> String {
    format!("cannot draw the chart: {error}")
}

/// Registers the embedded DejaVu Sans with plotters, once per process.
fn register_embedded_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT_FAMILY.as_str(), FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font cannot be read".to_string())
        })
        .clone()
}

/// Draws `charts` side by side into one image and returns it with each
/// chart's plot rectangle (the latter lets tests locate data in the image).
fn render_row(charts: &[Chart], width_px_each: u32, height_px: u32) -> Result<(Image, Vec<PlotRect>), String> {
    let width_px = u32::try_from(charts.len())
        .ok()
        .and_then(|count| width_px_each.checked_mul(count))
        .filter(|&width| width > 0)
        .ok_or("a row needs at least one chart and a width that fits")?;
    if height_px == 0 || u64::from(width_px) * u64::from(height_px) > MAX_PIXELS {
        return Err(format!("unsupported image size {width_px}x{height_px}"));
    }
    register_embedded_font()?;
    let mut rgb = vec![0; 3 * width_px as usize * height_px as usize];
    let plots = {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (width_px, height_px)).map_err(drawing_error)?;
        let root = backend.into_drawing_area();
        root.fill(&BACKGROUND).map_err(drawing_error)?;
        let plots = charts
            .iter()
            .zip(root.split_evenly((1, charts.len())))
            .map(|(chart, area)| draw_chart(chart, &area))
            .collect::<Result<_, _>>()?;
        root.present().map_err(drawing_error)?;
        plots
    };
    Ok((Image { width_px, height_px, rgb }, plots))
}

/// Draws one chart filling `area` and returns its plot rectangle.
fn draw_chart(chart: &Chart, area: &Area) -> Result<PlotRect, String> {
    let series_runs: Vec<Vec<Vec<(f64, f64)>>> =
        chart.series.iter().map(|series| drawable_runs(series, chart.x_scale, chart.y_scale)).collect();
    let all_points = || series_runs.iter().flatten().flatten();
    let xs: Vec<f64> = all_points().map(|p| p.0).collect();
    let ys: Vec<f64> = all_points().map(|p| p.1).collect();
    let x_axis = Axis::fit(chart.x_scale, &xs, 0.0)?;
    let y_axis = Axis::fit(chart.y_scale, &ys, Y_PADDING_FRACTION)?;

    let title_style = TextStyle::from((FONT_FAMILY, TITLE_FONT_PX)).color(&TEXT);
    let label_style = TextStyle::from((FONT_FAMILY, LABEL_FONT_PX)).color(&TEXT);
    let tick_style = TextStyle::from((FONT_FAMILY, TICK_FONT_PX)).color(&TEXT);
    let text_size =
        |text: &str, style: &TextStyle| area.estimate_text_size(text, style).map(|(w, h)| (w as i32, h as i32)).map_err(drawing_error);
    let text_height = |style: &TextStyle| text_size("0", style).map(|(_, h)| h);
    let (width, height) = (area.dim_in_pixel().0 as i32, area.dim_in_pixel().1 as i32);
    let (tick_height, label_height) = (text_height(&tick_style)?, text_height(&label_style)?);

    // Legend column right of the plot, so it never hides data.
    let max_name_px = (f64::from(width) * MAX_LEGEND_WIDTH_FRACTION) as i32 - LEGEND_SWATCH_PX - LEGEND_SWATCH_GAP_PX - 2 * PAD_PX;
    let mut legend = Vec::new();
    for (i, series) in chart.series.iter().enumerate().filter(|(_, series)| !series.name.is_empty()) {
        let name = truncate_to_width(&series.name, max_name_px, &|text| text_size(text, &tick_style).map(|(w, _)| w))?;
        let name_width = text_size(&name, &tick_style)?.0;
        legend.push((name, name_width, SERIES_COLOURS[i % SERIES_COLOURS.len()]));
    }
    let legend_width =
        legend.iter().map(|(_, name_width, _)| LEGEND_SWATCH_PX + LEGEND_SWATCH_GAP_PX + name_width).max().map_or(0, |w| w + 2 * PAD_PX);

    // Vertical layout first: the y ticks depend only on the plot height,
    // and their label widths then set the left margin. Half a tick label of
    // room above the plot keeps the top y label inside the image.
    let title_block = if chart.title.is_empty() { 0 } else { text_height(&title_style)? + PAD_PX };
    let top_margin = PAD_PX + title_block + tick_height / 2;
    let x_label_area = 2 * TICK_LEN_PX + tick_height + if chart.x_label.is_empty() { 0 } else { DESC_GAP_PX + label_height };
    let plot_height = height - top_margin - x_label_area - PAD_PX;
    if plot_height < MIN_PLOT_SIDE_PX {
        return Err(format!("image height {height} px is too small for the chart"));
    }
    let tick_width = |label: &str| text_size(label, &tick_style).map(|(w, _)| w);
    let y_ticks = choose_ticks(&y_axis, plot_height, MIN_Y_TICK_SPACING_PX, &|_| Ok(tick_height))?;
    let y_tick_label_width = y_ticks.major.iter().map(|(_, label)| tick_width(label)).try_fold(0, |a, w| w.map(|w| a.max(w)))?;
    let y_label_area = 2 * TICK_LEN_PX + y_tick_label_width + if chart.y_label.is_empty() { 0 } else { DESC_GAP_PX + label_height };
    let right_block = legend_width.max(RIGHT_OVERHANG_PX);
    let plot_width = width - PAD_PX - y_label_area - right_block;
    if plot_width < MIN_PLOT_SIDE_PX {
        return Err(format!("image width {width} px is too small for the chart"));
    }
    let x_ticks = choose_ticks(&x_axis, plot_width, MIN_X_TICK_SPACING_PX, &tick_width)?;

    let (chart_area, legend_area) = area.split_horizontally(width - right_block);
    if !chart.title.is_empty() {
        // Centred over the plot rather than the whole chart area.
        let centre = PAD_PX + y_label_area + plot_width / 2;
        chart_area
            .draw(&Text::new(chart.title.as_str(), (centre, PAD_PX), title_style.pos(Pos::new(HPos::Center, VPos::Top))))
            .map_err(drawing_error)?;
    }
    let mut context = ChartBuilder::on(&chart_area)
        .margin_top(top_margin)
        .margin_bottom(PAD_PX)
        .margin_left(PAD_PX)
        .x_label_area_size(x_label_area)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(AxisCoord { axis: x_axis, ticks: x_ticks.clone() }, AxisCoord { axis: y_axis, ticks: y_ticks.clone() })
        .map_err(drawing_error)?;

    let x_formatter = |position: &f64| x_ticks.label_at(*position);
    let y_formatter = |position: &f64| y_ticks.label_at(*position);
    let mut mesh = context.configure_mesh();
    mesh.x_label_formatter(&x_formatter)
        .y_label_formatter(&y_formatter)
        .label_style(tick_style.clone())
        .axis_desc_style(label_style.clone())
        .bold_line_style(GRID_MAJOR)
        .light_line_style(GRID_MINOR)
        .axis_style(FRAME)
        .set_all_tick_mark_size(TICK_LEN_PX);
    if !chart.x_label.is_empty() {
        mesh.x_desc(chart.x_label.as_str());
    }
    if !chart.y_label.is_empty() {
        mesh.y_desc(chart.y_label.as_str());
    }
    mesh.draw().map_err(drawing_error)?;
    let (x_range, y_range) = context.plotting_area().get_pixel_range();
    let plot = PlotRect { left: x_range.start, top: y_range.start, right: x_range.end - 1, bottom: y_range.end - 1 };
    // plotters draws the axis lines just outside the plot, left and below;
    // the frame closes the box over them.
    let frame = [shift_into(area, (plot.left - 1, plot.top)), shift_into(area, (plot.right, plot.bottom + 1))];
    area.draw(&Rectangle::new(frame, FRAME.stroke_width(1))).map_err(drawing_error)?;

    for (i, runs) in series_runs.iter().enumerate() {
        let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
        for run in runs {
            if let [point] = run[..] {
                // A lone point between gaps: a dot about as wide as the line.
                context.draw_series([Circle::new(point, LINE_WIDTH_PX / 2, colour.filled())]).map_err(drawing_error)?;
            } else {
                // Segment by segment: plotters fills a wide path as one polygon,
                // which leaves holes where a noisy curve crosses itself.
                let segments = run.windows(2).map(|pair| PathElement::new([pair[0], pair[1]], colour.stroke_width(LINE_WIDTH_PX)));
                context.draw_series(segments).map_err(drawing_error)?;
            }
        }
    }

    if xs.is_empty() {
        let note_style = label_style.color(&NOTE_TEXT).pos(Pos::new(HPos::Center, VPos::Center));
        let centre = ((plot.left + plot.right) / 2, (plot.top + plot.bottom) / 2);
        area.draw(&Text::new("no data", shift_into(area, centre), note_style)).map_err(drawing_error)?;
    }

    // Legend rows from the top of the plot down.
    for (row, (name, _, colour)) in legend.iter().enumerate() {
        let x = PAD_PX;
        let mid_y = shift_into(&legend_area, (0, plot.top + row as i32 * LEGEND_ROW_PX)).1 + tick_height / 2;
        let swatch = PathElement::new([(x, mid_y), (x + LEGEND_SWATCH_PX, mid_y)], colour.stroke_width(LINE_WIDTH_PX));
        legend_area.draw(&swatch).map_err(drawing_error)?;
        let name_style = tick_style.pos(Pos::new(HPos::Left, VPos::Center));
        legend_area
            .draw(&Text::new(name.as_str(), (x + LEGEND_SWATCH_PX + LEGEND_SWATCH_GAP_PX, mid_y), name_style))
            .map_err(drawing_error)?;
    }
    Ok(plot)
}

/// Turns image coordinates into coordinates relative to `area`.
fn shift_into(area: &Area, (x, y): (i32, i32)) -> (i32, i32) {
    let (x_range, y_range) = area.get_pixel_range();
    (x - x_range.start, y - y_range.start)
}

/// Shortens `text` to at most `max_width_px` as measured by `width_px`,
/// marking the cut with "..".
fn truncate_to_width(text: &str, max_width_px: i32, width_px: &dyn Fn(&str) -> Result<i32, String>) -> Result<String, String> {
    if width_px(text)? <= max_width_px {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let candidate: String = chars[..keep].iter().chain(&['.', '.']).collect();
        if keep == 0 || width_px(&candidate)? <= max_width_px {
            return Ok(candidate);
        }
    }
    Ok("..".to_string())
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

    fn colour(i: usize) -> [u8; 3] {
        let RGBColor(r, g, b) = SERIES_COLOURS[i];
        [r, g, b]
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
        let (image, plots) = render_row(std::slice::from_ref(chart), width, height).expect("render succeeds");
        assert_eq!(image.rgb, rgb, "the PNG holds the rendered pixels");
        (rgb, plots[0])
    }

    /// Mean y of pixels of exactly `colour` in column `x` within the plot.
    fn mean_y_of_colour(rgb: &[u8], width: u32, plot: PlotRect, x: i32, colour: [u8; 3]) -> Option<f64> {
        let ys: Vec<i32> = (plot.top..=plot.bottom).filter(|&y| pixel(rgb, width, x, y) == colour).collect();
        (!ys.is_empty()).then(|| ys.iter().map(|&y| f64::from(y)).sum::<f64>() / ys.len() as f64)
    }

    /// Counts pixels that are neither background nor a series colour inside `rect`
    /// (x0..x1, y0..y1, exclusive ends): text and grid.
    fn ink_in(rgb: &[u8], width: u32, (x0, x1): (i32, i32), (y0, y1): (i32, i32)) -> usize {
        (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).filter(|&(x, y)| pixel(rgb, width, x, y)[0] < 128).count()
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
            for y in 0..height as i32 {
                for x in 0..width as i32 {
                    assert_eq!(
                        pixel(&row, row_width, x + k as i32 * width as i32, y),
                        pixel(&alone, width, x, y),
                        "chart {k} at ({x}, {y})"
                    );
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
        let mean_y = mean_y_of_colour(&rgb, width, plot, x, colour(0)).expect("line drawn");
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
        let xs: Vec<i32> = (plot.left..=plot.right).filter(|&x| pixel(&rgb, width, x, y) == colour(0)).collect();
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
        let mean_y = mean_y_of_colour(&rgb, width, plot, x, colour(0)).expect("line drawn");
        assert!((mean_y - f64::from(plot.top + plot.bottom) / 2.0).abs() <= 1.5);
    }

    #[test]
    fn empty_inputs_render_axes_and_a_note() {
        let empty_series = vec![series("nothing", &[])];
        for series in [Vec::new(), empty_series] {
            for scale in [Scale::Linear, Scale::Log10] {
                let (rgb, plot) = render_decoded(&test_chart(scale, scale, series.clone()), 300, 200);
                // The frame is drawn and the "no data" note sits mid-plot.
                let frame = [80, 80, 80];
                let mid_y = (plot.top + plot.bottom) / 2;
                assert_eq!([pixel(&rgb, 300, plot.left - 1, mid_y), pixel(&rgb, 300, plot.right, mid_y)], [frame, frame]);
                assert_ne!(pixel(&rgb, 300, plot.left, mid_y), frame, "one line on the left, not two");
                let (cx, cy) = ((plot.left + plot.right) / 2, (plot.top + plot.bottom) / 2);
                let note = (cy - 6..cy + 6).flat_map(|y| (cx - 30..cx + 30).map(move |x| (x, y)));
                assert!(note.clone().any(|(x, y)| pixel(&rgb, 300, x, y) == [140, 140, 140]), "no-data note drawn");
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
    fn too_small_too_large_or_zero_size_is_an_error() {
        let chart = test_chart(Scale::Linear, Scale::Linear, Vec::new());
        assert!(render_png(&chart, 0, 100).is_err());
        assert!(render_png(&chart, 100, 0).is_err());
        assert!(render_png(&chart, 60, 40).is_err());
        assert!(render_png(&chart, 300, 60).is_err());
        assert!(render_png(&chart, 70, 300).is_err());
        assert!(render_png(&chart, 100_000, 100_000).is_err());
        assert!(render_row_png(&[chart.clone(), chart], u32::MAX, 100).is_err());
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
            (x - 1..=x + 1).any(|x| (y - 1..=y + 1).any(|y| pixel(&rgb, width, x, y) == colour(0)))
        };
        assert!(dot_at(0.0, y_pad_fraction));
        assert!(dot_at(1.0, 1.0 - y_pad_fraction));
        let middle = (plot.left + plot.right) / 2;
        assert_eq!(mean_y_of_colour(&rgb, width, plot, middle, colour(0)), None, "no line across the gap");

        // On a log y axis, -1 and 0 are skipped, so the points at x = 0 and 1
        // neither show nor stretch the ranges: the line from (2, 0.1) to
        // (3, 0.01) spans the plot, corner to corner within the y padding.
        let log_chart = test_chart(Scale::Linear, Scale::Log10, vec![series("loss", &[(0.0, -1.0), (1.0, 0.0), (2.0, 0.1), (3.0, 0.01)])]);
        let (rgb, plot) = render_decoded(&log_chart, width, height);
        for x_fraction in [0.01, 0.5, 0.99] {
            let x = plot.x_px(x_fraction).round() as i32;
            let mean_y = mean_y_of_colour(&rgb, width, plot, x, colour(0)).expect("line drawn");
            let expected_y = plot.y_px(1.0 - y_pad_fraction - x_fraction * (1.0 - 2.0 * y_pad_fraction));
            assert!((mean_y - expected_y).abs() <= 2.0, "at {x_fraction}: line at {mean_y}, expected {expected_y}");
        }
    }

    #[test]
    fn legend_names_each_series_in_its_colour_beside_the_plot() {
        let chart = test_chart(
            Scale::Linear,
            Scale::Linear,
            vec![
                series("train", &[(0.0, 1.0), (1.0, 0.5)]),
                series("", &[(0.0, 0.7), (1.0, 0.6)]),
                series("validation", &[(0.0, 0.9), (1.0, 0.2)]),
            ],
        );
        let (width, height) = (800, 400);
        let (rgb, plot) = render_decoded(&chart, width, height);
        // Swatches of the named series (first and third colours) right of the plot, one row
        // each; the unnamed series has none.
        let right_of_plot = |colour: [u8; 3]| {
            (plot.right + 2..width as i32)
                .flat_map(|x| (plot.top..plot.top + 60).map(move |y| (x, y)))
                .filter(|&(x, y)| pixel(&rgb, width, x, y) == colour)
                .count()
        };
        assert!(right_of_plot(colour(0)) >= 20, "train swatch");
        assert!(right_of_plot(colour(2)) >= 20, "validation swatch");
        assert_eq!(right_of_plot(colour(1)), 0, "no swatch for an unnamed series");
        // Names are written next to the swatches.
        assert!(ink_in(&rgb, width, (plot.right + 40, width as i32), (plot.top, plot.top + 40)) > 30);
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

    /// Label widths as a 16 px sans font roughly sets digits.
    fn rough_width(label: &str) -> Result<i32, String> {
        Ok(9 * label.chars().count() as i32)
    }

    fn labels(ticks: &Ticks) -> Vec<&str> {
        ticks.major.iter().map(|(_, label)| label.as_str()).collect()
    }

    #[test]
    fn log_ticks_label_audio_range_without_overlap() {
        let axis = Axis { scale: Scale::Log10, lo: 20f64.log10(), hi: 20_000f64.log10() };
        let wide = choose_ticks(&axis, 700, MIN_X_TICK_SPACING_PX, &rough_width).unwrap();
        assert_eq!(labels(&wide), ["20", "30", "50", "100", "200", "300", "500", "1k", "2k", "3k", "5k", "10k", "20k"]);
        assert!(!wide.minor.is_empty());

        // A narrow axis thins the labels instead of letting them overlap,
        // and drops the minor lines once decades get short.
        let narrow = choose_ticks(&axis, 250, MIN_X_TICK_SPACING_PX, &rough_width).unwrap();
        assert_eq!(labels(&narrow), ["100", "1k", "10k"]);
        let narrower = choose_ticks(&axis, 100, MIN_X_TICK_SPACING_PX, &rough_width).unwrap();
        assert_eq!(labels(&narrower), ["100", "10k"]);
        assert!(narrower.minor.is_empty(), "decades too short for minor lines");
    }

    #[test]
    fn linear_and_sub_decade_ticks_are_round_steps() {
        let db = Axis { scale: Scale::Linear, lo: -60.0, hi: 6.0 };
        assert_eq!(
            labels(&choose_ticks(&db, 400, MIN_Y_TICK_SPACING_PX, &|_| Ok(16)).unwrap()),
            ["-60", "-50", "-40", "-30", "-20", "-10", "0"]
        );
        assert_eq!(labels(&choose_ticks(&db, 150, MIN_Y_TICK_SPACING_PX, &|_| Ok(16)).unwrap()), ["-50", "0"]);
        let steps = Axis { scale: Scale::Linear, lo: 0.0, hi: 2000.0 };
        assert_eq!(labels(&choose_ticks(&steps, 700, MIN_X_TICK_SPACING_PX, &rough_width).unwrap()), ["0", "500", "1000", "1500", "2000"]);
        assert_eq!(labels(&choose_ticks(&steps, 200, MIN_X_TICK_SPACING_PX, &rough_width).unwrap()), ["0", "2k"]);
        let long = Axis { scale: Scale::Linear, lo: 0.0, hi: 20_000.0 };
        assert_eq!(labels(&choose_ticks(&long, 300, MIN_X_TICK_SPACING_PX, &rough_width).unwrap()), ["0", "10k", "20k"]);
        let loss = Axis { scale: Scale::Log10, lo: 0.15f64.log10(), hi: 0.95f64.log10() };
        assert_eq!(labels(&choose_ticks(&loss, 400, MIN_Y_TICK_SPACING_PX, &|_| Ok(16)).unwrap()), ["0.2", "0.4", "0.6", "0.8"]);
        // Log spacing crowds the top: 0.1 steps need a taller axis.
        assert_eq!(
            labels(&choose_ticks(&loss, 600, MIN_Y_TICK_SPACING_PX, &|_| Ok(16)).unwrap()),
            ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
        );
    }

    #[test]
    fn extreme_values_render_or_error_without_panicking() {
        let renders = |points: &[(f64, f64)], x_scale: Scale, y_scale: Scale| {
            render_png(&test_chart(x_scale, y_scale, vec![series("s", points)]), 500, 300)
        };
        let drawable = [
            vec![(1e15, 1e15), (1e15 + 1.0, 1e15 + 2.0)],
            vec![(1e17, 1e17), (1e17 + 64.0, 1e17 + 32.0)],
            vec![(1e300, 1e300), (1e300 * (1.0 + 1e-15), 1e300 * (1.0 + 3e-15))],
            vec![(1e-300, 1e-300), (2e-300, 3e-300)],
            vec![(5e-324, 5e-324), (1e-323, 1e-323)],
            vec![(1.0, 1e-300), (2.0, 1e300)],
            vec![(-1e300, 1e300), (1e300, -1e300)],
        ];
        for points in &drawable {
            for (x_scale, y_scale) in [(Scale::Linear, Scale::Linear), (Scale::Log10, Scale::Log10)] {
                assert!(renders(points, x_scale, y_scale).is_ok(), "{points:?} on {x_scale:?}/{y_scale:?}");
            }
        }
        // Near f64::MAX the log axis still works, the padded linear one overflows.
        let huge = [(f64::MAX, f64::MAX), (f64::MAX / 2.0, 1.0)];
        assert!(renders(&huge, Scale::Log10, Scale::Log10).is_ok());
        assert!(renders(&huge, Scale::Linear, Scale::Linear).unwrap_err().contains("too wide"));
    }

    #[test]
    fn small_sizes_either_fit_or_say_so() {
        let mut chart = test_chart(Scale::Log10, Scale::Linear, vec![series("a long series name", &[(20.0, -3.0), (2e4, 6.0)])]);
        chart.title = "A title far wider than the smallest charts".to_string();
        for width in (60..260).step_by(10) {
            for height in (60..200).step_by(10) {
                match render_png(&chart, width, height) {
                    Ok(bytes) => assert_eq!(decode(&bytes).0, width),
                    Err(message) => assert!(message.contains("too small"), "{width}x{height}: {message}"),
                }
            }
        }
        assert!(render_png(&chart, 250, 190).is_ok());
    }

    #[test]
    fn long_legend_names_are_shortened() {
        let width = |text: &str| Ok(10 * text.chars().count() as i32);
        assert_eq!(truncate_to_width("validation", 100, &width).unwrap(), "validation");
        assert_eq!(truncate_to_width("input (unprocessed)", 100, &width).unwrap(), "input (u..");
        assert_eq!(truncate_to_width("abc", 5, &width).unwrap(), "..");
    }
}
