//! Draw the simulator's results as PNG charts: paths over days as lines, figures per case as bars.
//!
//! Text is drawn with a font compiled into the binary (`assets/DejaVuSans-Latin.ttf`, see
//! `assets/README.md`), so charts render on a machine without system fonts or fontconfig. Values
//! that are not finite are skipped and degenerate ranges padded: whatever a simulation produced,
//! the chart is drawn. Paths should end in `.png`, as plotters picks the encoder by extension.

use std::error::Error;
use std::iter::once;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One line of a line chart: a value per business day (index = day).
pub struct Line {
    pub label: String,
    pub values: Vec<f64>,
}

/// One bar of a grouped bar chart: the mean over seeds and its range.
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// A group of bars sharing a title (e.g. one figure such as "Margin calls", one bar per case).
pub struct BarGroup {
    pub title: String,
    pub bars: Vec<Bar>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct ChartError {
    pub path: PathBuf,
    pub reason: String,
}

/// Plotters finds fonts by family name; every style falls back to this family's one font.
const FONT_FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-Latin.ttf");
const LINES_SIZE_PX: (u32, u32) = (1200, 800);
const BARS_SIZE_PX: (u32, u32) = (1400, 900);
const TITLE_FONT_PX: u32 = 28;
const CAPTION_FONT_PX: u32 = 20;
const LABEL_FONT_PX: u32 = 15;
const LABEL_GAP_PX: u32 = 6;
const Y_LABEL_AREA_PX: u32 = 80;
/// Rotated bar labels longer than this are cut with an ellipsis, so that they fit their area.
const BAR_LABEL_CHARS_MAX: usize = 20;
/// The share of its slot that a bar fills, leaving a gap between neighbours.
const BAR_WIDTH_SLOTS: f64 = 0.7;

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A line chart (e.g. prices indexed to 100 over a year), legend with the labels.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
) -> Result<(), ChartError> {
    render(path, LINES_SIZE_PX, |root| {
        let days = lines.iter().map(|line| line.values.len()).max();
        // A single day (or none) still gets an axis one day wide.
        let day_last = u32::try_from(days.unwrap_or(0).saturating_sub(1)).unwrap_or(u32::MAX);
        let values = lines.iter().flat_map(|line| line.values.iter().copied());
        let (y_min, y_max) = padded_range(values);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_FAMILY, TITLE_FONT_PX))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(Y_LABEL_AREA_PX)
            .build_cartesian_2d(0..day_last.max(1), y_min..y_max)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(WHITE)
            .label_style((FONT_FAMILY, LABEL_FONT_PX))
            .axis_desc_style((FONT_FAMILY, LABEL_FONT_PX + 3))
            .draw()?;
        for (index, line) in lines.iter().enumerate() {
            let style = Palette99::pick(index).stroke_width(2);
            let mut points: Vec<(u32, f64)> = (0..).zip(line.values.iter().copied()).collect();
            points.retain(|(_, value)| value.is_finite());
            // Non-finite values break the line; an empty run still carries the legend entry.
            let mut runs: Vec<&[(u32, f64)]> = points.chunk_by(|a, b| b.0 == a.0 + 1).collect();
            if runs.is_empty() {
                runs.push(&[]);
            }
            for (run_index, run) in runs.into_iter().enumerate() {
                // A lone point draws no segment, so it is marked with a dot instead.
                let point_size = if run.len() == 1 { 3 } else { 0 };
                let series = LineSeries::new(run.iter().copied(), style).point_size(point_size);
                let drawn = chart.draw_series(series)?;
                if run_index == 0 {
                    let legend = move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style);
                    drawn.label(line.label.as_str()).legend(legend);
                }
            }
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT_FAMILY, LABEL_FONT_PX))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
}

/// Grouped bars with min–max whiskers, one panel per group laid out in a grid (e.g. 4 figures x 8
/// cases), a horizontal reference line at `reference` (e.g. 100 for an index), labels of bars
/// readable (rotated, and abbreviated if long, when they do not fit side by side).
///
/// Bars start at `reference` (zero without one), so that an indexed figure shows its deviation
/// from the reference; bar `i` has the same colour in every panel.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    reference: Option<f64>,
    groups: &[BarGroup],
) -> Result<(), ChartError> {
    let reference = reference.filter(|value| value.is_finite());
    render(path, BARS_SIZE_PX, |root| {
        let body = root.titled(title, (FONT_FAMILY, TITLE_FONT_PX))?;
        // The squarest grid that holds every group: 4 groups in 2 x 2, 6 in 2 x 3.
        let columns = (1..).find(|columns| columns * columns >= groups.len());
        let columns = columns.unwrap_or(1);
        let panels = body.split_evenly((groups.len().div_ceil(columns).max(1), columns));
        for (group, panel) in groups.iter().zip(&panels) {
            draw_bar_panel(panel, group, y_label, reference)?;
        }
        Ok(())
    })
}

/// Draws on a white bitmap of `size_px` and writes it to `path` as a PNG.
fn render(
    path: &Path,
    size_px: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<(), ChartError> {
    static REGISTER_FONT: Once = Once::new();
    REGISTER_FONT.call_once(|| {
        // The font is compiled in: failing to parse it is a programmer error, not an operating one.
        let registered = register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok();
        assert!(registered, "the embedded chart font does not parse");
    });
    let root = BitMapBackend::new(path, size_px).into_drawing_area();
    let drawn = root
        .fill(&WHITE)
        .map_err(Box::from)
        .and_then(|()| draw(&root));
    drawn
        .and_then(|()| Ok(root.present()?))
        .map_err(|error| ChartError {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

fn draw_bar_panel(
    panel: &Area,
    group: &BarGroup,
    y_label: &str,
    reference: Option<f64>,
) -> DrawResult {
    let (bars, base) = (&group.bars, reference.unwrap_or(0.0));
    let values = bars.iter().flat_map(|bar| [bar.mean, bar.min, bar.max]);
    let (y_min, y_max) = padded_range(values.chain(once(base)));
    let slots = bars.len().max(1);
    let slot_px = panel.dim_in_pixel().0.saturating_sub(Y_LABEL_AREA_PX) / slots as u32;
    // Glyphs of DejaVu Sans are on average narrower than 0.6 em.
    let width_px = |label: &String| label.chars().count() as u32 * LABEL_FONT_PX * 3 / 5;
    let widest_px = |labels: &[String]| labels.iter().map(width_px).max().unwrap_or(0);
    let mut labels: Vec<String> = bars.iter().map(|bar| bar.label.clone()).collect();
    let rotate = widest_px(&labels) + LABEL_GAP_PX > slot_px;
    let mut label_extent_px = LABEL_FONT_PX;
    if rotate {
        labels.iter_mut().for_each(abbreviate);
        label_extent_px = widest_px(&labels);
    }
    let x_max = slots as f64 - 0.5;
    let mut chart = ChartBuilder::on(panel)
        .caption(&group.title, (FONT_FAMILY, CAPTION_FONT_PX))
        .margin(12)
        .x_label_area_size(label_extent_px + 2 * LABEL_GAP_PX)
        .y_label_area_size(Y_LABEL_AREA_PX)
        .build_cartesian_2d(-0.5..x_max, y_min..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .light_line_style(WHITE)
        .y_label_style((FONT_FAMILY, LABEL_FONT_PX))
        .y_desc(y_label)
        .axis_desc_style((FONT_FAMILY, LABEL_FONT_PX + 1))
        .draw()?;
    // Plotters centres a rotated axis label on its tick, across the axis; so the labels are drawn
    // here instead, rotated ones read upwards and end just below the axis.
    let font = TextStyle::from((FONT_FAMILY, LABEL_FONT_PX).into_font());
    let label_style = if rotate {
        font.transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center))
    } else {
        font.pos(Pos::new(HPos::Center, VPos::Top))
    };
    let (panel_x, panel_y) = panel.get_base_pixel();
    let half_width = BAR_WIDTH_SLOTS / 2.0;
    let whisker = BLACK.stroke_width(2);
    for (index, (bar, label)) in bars.iter().zip(&labels).enumerate() {
        let x = index as f64;
        let (label_x, label_y) = chart.backend_coord(&(x, y_min));
        let label_at = (label_x - panel_x, label_y - panel_y + LABEL_GAP_PX as i32);
        panel.draw_text(label, &label_style, label_at)?;
        if bar.mean.is_finite() {
            let corners = [(x - half_width, base), (x + half_width, bar.mean)];
            let fill = Palette99::pick(index).filled();
            chart.draw_series(once(Rectangle::new(corners, fill)))?;
        }
        if bar.min.is_finite() && bar.max.is_finite() {
            let (low, high, cap) = (bar.min, bar.max, half_width / 2.0);
            let stem = [(x, low), (x, high)];
            let caps = [
                [(x - cap, low), (x + cap, low)],
                [(x - cap, high), (x + cap, high)],
            ];
            let paths = once(stem).chain(caps);
            chart.draw_series(paths.map(|points| PathElement::new(points, whisker)))?;
        }
    }
    if let Some(reference) = reference {
        let line = [(-0.5, reference), (x_max, reference)];
        chart.draw_series(once(PathElement::new(line, BLACK.mix(0.7))))?;
    }
    Ok(())
}

/// Cuts a label to `BAR_LABEL_CHARS_MAX` characters, the last an ellipsis.
fn abbreviate(label: &mut String) {
    if label.chars().count() > BAR_LABEL_CHARS_MAX {
        *label = label
            .chars()
            .take(BAR_LABEL_CHARS_MAX - 1)
            .chain(once('…'))
            .collect();
    }
}

/// The range of the finite values widened by 5% of its span on each side; equal values are
/// widened by 5% of their size (at least 1), and no finite value at all gives 0..1.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let finite = values.filter(|value| value.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    if low > high {
        return (0.0, 1.0);
    }
    let span = high - low;
    let margin = if span > 0.0 {
        span * 0.05
    } else {
        (low.abs() * 0.05).max(1.0)
    };
    (low - margin, high + margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{path:?} is not a PNG"
        );
    }

    fn line(label: &str, values: &[f64]) -> Line {
        let (label, values) = (label.to_string(), values.to_vec());
        Line { label, values }
    }

    fn group(title: &str, bars: &[(&str, f64, f64, f64)]) -> BarGroup {
        let bar = |&(label, mean, min, max): &(&str, f64, f64, f64)| {
            let label = label.to_string();
            Bar {
                label,
                mean,
                min,
                max,
            }
        };
        let (title, bars) = (title.to_string(), bars.iter().map(bar).collect());
        BarGroup { title, bars }
    }

    #[test]
    fn draws_a_year_of_prices_and_four_figures_of_eight_cases() {
        let dir = tempfile::tempdir().unwrap();
        let wave = |size: f64| -> Vec<f64> {
            let day_value = |day| 100.0 + size * (f64::from(day) / 20.0).sin();
            (0..250).map(day_value).collect()
        };
        let prices =
            [("bund", 1.0), ("oat", 2.0), ("btp", 3.0)].map(|(name, size)| line(name, &wave(size)));
        let path = dir.path().join("prices.png");
        lines(&path, "Prices", "business day", "index", &prices).unwrap();
        assert_png(&path);

        let names = ["baseline", "rate shock +200bp", "haircut x2", "default"];
        let case = |case: usize| (names[case % 4], 90.0 + 5.0 * case as f64, 88.0, 130.0);
        let cases: Vec<(&str, f64, f64, f64)> = (0..8).map(case).collect();
        let titles = ["Margin calls", "Liquidity used", "Net exposure", "Fails"];
        let groups = titles.map(|title| group(title, &cases));
        let path = dir.path().join("figures.png");
        bars(&path, "Figures per case", "index", Some(100.0), &groups).unwrap();
        assert_png(&path);
    }

    #[test]
    fn draws_degenerate_inputs_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let odd_lines = [
            vec![],
            vec![line("empty", &[]), line("one day", &[100.0])],
            vec![line("flat", &[100.0; 10]), line("zero", &[0.0; 10])],
            vec![
                line("gaps", &[nan, 1.0, inf, 2.0, 3.0, -inf]),
                line("none", &[nan]),
            ],
        ];
        for (index, odd) in odd_lines.iter().enumerate() {
            let path = dir.path().join(format!("lines-{index}.png"));
            lines(&path, "", "", "", odd).unwrap();
            assert_png(&path);
        }
        let odd_groups = [
            vec![],
            vec![group("no bars", &[])],
            vec![
                group("flat", &[("a", 5.0, 5.0, 5.0)]),
                group("odd", &[("b", nan, inf, 1.0)]),
            ],
        ];
        for (index, odd) in odd_groups.iter().enumerate() {
            for reference in [None, Some(100.0), Some(nan)] {
                let path = dir.path().join(format!("bars-{index}.png"));
                bars(&path, "", "", reference, odd).unwrap();
                assert_png(&path);
            }
        }
        let mut label = "a case name far too long for its slot".to_string();
        abbreviate(&mut label);
        assert_eq!(label.chars().count(), BAR_LABEL_CHARS_MAX);
    }

    #[test]
    fn reports_a_path_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("chart.png");
        let error = lines(&path, "", "", "", &[line("a", &[1.0, 2.0])]).unwrap_err();
        assert_eq!(error.path, path);
    }
}
