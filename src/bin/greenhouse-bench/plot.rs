//! PNG plot of the server's memory over a soak run.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;

/// One memory sample: minutes since the soak started, resident set size in MB.
pub type Point = (f64, f64);

/// Data of a memory plot.
pub struct MemoryPlot<'a> {
    pub title: &'a str,
    pub rss: &'a [Point],
    /// Bytes of the C heap in live allocations, in MB, drawn under the RSS; may be empty.
    pub heap_in_use: &'a [Point],
    /// Start and end of each sweep, in minutes since the soak started.
    pub sweeps: &'a [(f64, f64)],
}

/// Registers the TrueType font used for all text. Plotters' `ab_glyph` backend has no
/// built-in font and cannot search the system's, so the file is read here.
pub fn register_font(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("could not read font {}; pass --font with a .ttf file", path.display()))?;
    // plotters keeps the font for the life of the process, so the bytes are leaked once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType font plotters can read", path.display()))
}

/// Draws RSS and the heap in use against time, with sweeps as shaded bands, and writes it to `path` as PNG.
pub fn draw(path: &Path, plot: &MemoryPlot<'_>) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("could not draw {}: {e}", path.display()))?;

    let end_minutes = plot.rss.last().map_or(1.0, |(t, _)| *t).max(0.1);
    let top_mb = plot.rss.iter().map(|(_, mb)| *mb).fold(0.0, f64::max).max(1.0) * 1.25;
    let mut chart = ChartBuilder::on(&root)
        .caption(plot.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end_minutes, 0.0..top_mb)
        .map_err(|e| anyhow!("could not lay out the chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("minutes since start")
        .y_desc("memory (MB)")
        .draw()
        .map_err(|e| anyhow!("could not draw the axes: {e}"))?;

    let band = RGBColor(255, 200, 120).mix(0.35);
    for &(start, end) in plot.sweeps {
        chart
            .draw_series(std::iter::once(Rectangle::new([(start, 0.0), (end.max(start + 0.02), top_mb)], band.filled())))
            .map_err(|e| anyhow!("could not draw a sweep band: {e}"))?;
    }
    chart
        .draw_series(LineSeries::new(plot.rss.iter().copied(), BLUE.stroke_width(2)))
        .map_err(|e| anyhow!("could not draw the RSS line: {e}"))?
        .label("server RSS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !plot.heap_in_use.is_empty() {
        let green = RGBColor(0, 140, 60);
        chart
            .draw_series(LineSeries::new(plot.heap_in_use.iter().copied(), green.stroke_width(2)))
            .map_err(|e| anyhow!("could not draw the heap line: {e}"))?
            .label("C heap in use (live allocations)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("could not draw the legend: {e}"))?;

    root.present().map_err(|e| anyhow!("could not write {}: {e}", path.display()))?;
    Ok(())
}
