//! SVG charts drawn with plotters: latency distributions (CDFs on a log scale), bar charts
//! and line/point timelines. Owns the look of every chart; cases only hand over the data.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::model::Chart;
use crate::stats::Latencies;

const SIZE: (u32, u32) = (860, 460);
const FONT: &str = "sans-serif";
/// Width left of the plot for numeric y labels.
const AXIS_LABEL_AREA: u32 = 56;

/// Distinct colours for up to eight series, then repeating.
fn colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[index % PALETTE.len()]
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {error}")
}

/// Renders `draw` into an SVG document.
fn render(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Cumulative latency distributions of several series on a log-scaled microsecond axis.
///
/// # Errors
/// Fails when plotters cannot draw (it never should for finite data).
pub(crate) fn latency_cdf(
    file_name: &str,
    caption: &str,
    series: &[(String, &Latencies)],
) -> Result<Chart> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, latencies)| !latencies.is_empty())
        .map(|(name, latencies)| (name.clone(), latencies.cdf_points()))
        .collect();
    let (low, high) = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|point| point.0))
        .fold((f64::MAX, f64::MIN), |(low, high), x| {
            (low.min(x), high.max(x))
        });
    let (low, high) = if low <= high {
        ((low * 0.8).max(1.0), (high * 1.25).max(low * 2.0))
    } else {
        (1.0, 10.0)
    };
    let svg = render(|root| {
        let mut chart = framed(root, caption, AXIS_LABEL_AREA)
            .build_cartesian_2d((low..high).log_scale(), 0.0..1.0)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("latency (µs, log scale)")
            .y_desc("fraction of samples at or below")
            .draw()
            .map_err(plot_error)?;
        for (index, (name, points)) in curves.into_iter().enumerate() {
            let style = colour(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
    })?;
    Ok(named_chart(file_name, caption, svg))
}

/// Horizontal bars, one per `(label, value)`, with the value printed at the bar's end.
///
/// # Errors
/// Fails when plotters cannot draw.
pub(crate) fn bars(
    file_name: &str,
    caption: &str,
    unit: &str,
    bars: &[(String, f64)],
) -> Result<Chart> {
    let high = bars
        .iter()
        .map(|(_, value)| *value)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.2;
    let count = bars.len();
    let label_width = bars
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = u32::try_from(label_width.saturating_mul(7).clamp(60, 360)).unwrap_or(360);
    let svg = render(|root| {
        let mut chart = framed(root, caption, label_area)
            .build_cartesian_2d(0.0..high, (0..count).into_segmented())
            .map_err(plot_error)?;
        let labels: Vec<String> = bars.iter().map(|(label, _)| label.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(unit)
            .y_labels(count.max(1))
            .y_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(index) => labels.get(*index).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(index)),
                        (*value, SegmentValue::Exact(index + 1)),
                    ],
                    colour(index).filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
                Text::new(
                    format_value(*value),
                    (*value, SegmentValue::CenterOf(index)),
                    (FONT, 13),
                )
            }))
            .map_err(plot_error)?;
        Ok(())
    })?;
    Ok(named_chart(file_name, caption, svg))
}

/// Several `(x, y)` series as lines with points, e.g. a failover timeline (seconds against
/// block height per node), with optional vertical markers `(x, label)`.
///
/// # Errors
/// Fails when plotters cannot draw.
pub(crate) fn lines(
    file_name: &str,
    caption: &str,
    axes: (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    markers: &[(f64, String)],
) -> Result<Chart> {
    let points = series.iter().flat_map(|(_, points)| points.iter());
    let (x_low, x_high, y_low, y_high) = points.fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(x_low, x_high, y_low, y_high), (x, y)| {
            (x_low.min(*x), x_high.max(*x), y_low.min(*y), y_high.max(*y))
        },
    );
    let (x_low, x_high) = padded(x_low, x_high);
    let (y_low, y_high) = padded(y_low, y_high);
    let svg = render(|root| {
        let mut chart = framed(root, caption, AXIS_LABEL_AREA)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .draw()
            .map_err(plot_error)?;
        for (x, label) in markers {
            chart
                .draw_series(LineSeries::new(
                    [(*x, y_low), (*x, y_high)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(plot_error)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (*x, y_high),
                    (FONT, 12),
                )))
                .map_err(plot_error)?;
        }
        for (index, (name, points)) in series.iter().enumerate() {
            let style = colour(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|point| Circle::new(*point, 2, colour(index).filled())),
                )
                .map_err(plot_error)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })?;
    Ok(named_chart(file_name, caption, svg))
}

/// A chart builder with the house caption, margin and axis label areas; `y_label_area` is the
/// width left of the plot for the y labels.
fn framed<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(y_label_area);
    builder
}

/// Draws the series' legend at `position`.
fn draw_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

/// A chart of `svg` named `file_name`.
fn named_chart(file_name: &str, caption: &str, svg: String) -> Chart {
    Chart {
        file_name: file_name.to_owned(),
        caption: caption.to_owned(),
        svg,
    }
}

/// A range around `[low, high]` with a margin, never empty.
fn padded(low: f64, high: f64) -> (f64, f64) {
    if low > high {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.05).max(0.5);
    (low - margin, high + margin)
}

/// A value with at most three significant decimals, for bar labels.
fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn latency_cdf__when_two_series__then_svg_names_both() {
        // given
        let mut fast = Latencies::new();
        let mut slow = Latencies::new();
        for micros in 100..200 {
            fast.record(Duration::from_micros(micros));
            slow.record(Duration::from_micros(micros * 10));
        }

        // when
        let chart = latency_cdf(
            "x.svg",
            "two series",
            &[("fast".to_owned(), &fast), ("slow".to_owned(), &slow)],
        )
        .unwrap();

        // then
        assert!(chart.svg.starts_with("<svg"), "{}", &chart.svg[..80]);
        assert!(chart.svg.contains("fast") && chart.svg.contains("slow"));
    }

    #[test]
    fn bars_and_lines__when_drawn__then_labels_are_in_the_svg() {
        // given
        let data = [("healthy".to_owned(), 1.5), ("frozen".to_owned(), 2.5)];
        let series = [("node a".to_owned(), vec![(0.0, 1.0), (1.0, 2.0)])];

        // when
        let bars = bars("b.svg", "bars", "ms", &data).unwrap();
        let lines = lines(
            "l.svg",
            "lines",
            ("s", "height"),
            &series,
            &[(0.5, "kill".to_owned())],
        )
        .unwrap();

        // then
        assert!(bars.svg.contains("frozen") && bars.svg.contains("2.50"));
        assert!(lines.svg.contains("node a") && lines.svg.contains("kill"));
    }
}
