//! The figures of a run. Each figure is computed as data first (tested: the numbers a
//! figure shows are the rows' numbers) and then drawn with plotters as PNG (and SVG).

use super::report::SchemeScores;
use super::rows::{Row, STAGES};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One line of a line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn scheme_label(r: &Row) -> String {
    let mut label = r.point.scheme.to_string();
    if r.point.scheme == protocol::SchemeKind::Columnar {
        label.push_str(&format!(" ({})", r.engine_running));
    }
    if r.point.encrypted_weights {
        label.push_str(" (enc. weights)");
    }
    if r.params_name != "-"
        && !r.params_name.starts_with("bt-8192")
        && !r.params_name.starts_with("col-8192")
    {
        label.push_str(&format!(" [{}]", r.params_name));
    }
    if r.point.deployment.deployed() {
        label.push_str(&format!(" · {}", r.point.deployment));
    }
    label
}

/// Groups rows into series by scheme label, keeping rows that `keep` accepts, x from `x`,
/// y = median total latency (ms); points sorted by x.
fn series_by_scheme(
    rows: &[Row],
    keep: impl Fn(&Row) -> bool,
    x: impl Fn(&Row) -> f64,
) -> Vec<Series> {
    let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| keep(r)) {
        map.entry(scheme_label(r))
            .or_default()
            .push((x(r), r.stage("total").median));
    }
    map.into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { label, points }
        })
        .collect()
}

/// Median latency vs enrolled users, one line per scheme (at the fewest clusters and the
/// first seed of the run).
pub fn latency_vs_users(rows: &[Row]) -> Vec<Series> {
    let clusters = rows.iter().map(|r| r.clusters()).min().unwrap_or(1);
    let seed = rows.first().map_or(0, |r| r.point.seed);
    series_by_scheme(
        rows,
        |r| (r.clusters() == clusters || !r.point.scheme.encrypted()) && r.point.seed == seed,
        |r| r.point.users as f64,
    )
}

/// Median latency vs cluster count for the encrypted schemes (at the most users).
pub fn latency_vs_clusters(rows: &[Row]) -> Vec<Series> {
    let users = rows.iter().map(|r| r.point.users).max().unwrap_or(0);
    let seed = rows.first().map_or(0, |r| r.point.seed);
    series_by_scheme(
        rows,
        |r| r.point.users == users && r.point.scheme.encrypted() && r.point.seed == seed,
        |r| r.clusters() as f64,
    )
}

/// Per scheme at the most users and fewest clusters: the median of every stage but the
/// total (ms), in pipeline order.
pub fn stage_breakdown(rows: &[Row]) -> Vec<(String, Vec<(&'static str, f64)>)> {
    let users = rows.iter().map(|r| r.point.users).max().unwrap_or(0);
    let clusters = rows.iter().map(|r| r.clusters()).min().unwrap_or(1);
    let mut out: Vec<(String, Vec<(&'static str, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| {
        r.point.users == users && (r.clusters() == clusters || !r.point.scheme.encrypted())
    }) {
        let label = scheme_label(r);
        if out.iter().any(|(l, _)| *l == label) {
            continue;
        }
        let stages = STAGES[..STAGES.len() - 1]
            .iter()
            .map(|&s| (s, r.stage(s).median))
            .collect();
        out.push((label, stages));
    }
    out
}

/// DET points (false match rate, false non-match rate) at every distinct score threshold.
pub fn det(genuine: &[f64], impostor: &[f64]) -> Vec<(f64, f64)> {
    let mut thresholds: Vec<f64> = genuine.iter().chain(impostor).copied().collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    thresholds
        .into_iter()
        .map(|t| datasets::metrics::rates_at(genuine, impostor, t))
        .collect()
}

/// EER per preprocessing pipeline and scheme family (float for plain, quantized else).
pub fn accuracy_by_preprocessing(rows: &[Row]) -> Vec<(String, f64, f64)> {
    let mut out: Vec<(String, f64, f64)> = Vec::new();
    for r in rows {
        let Some(a) = &r.accuracy else { continue };
        let label = format!(
            "{} · {}",
            r.point.preprocessing,
            if r.point.scheme == protocol::SchemeKind::Plain {
                "float"
            } else {
                "quantized"
            }
        );
        if !out.iter().any(|(l, _, _)| *l == label) {
            out.push((label, a.eer, a.f1));
        }
    }
    out
}

/// The label of the horizontal band whose centre is at `y` (bands are [i, i + 1)), or
/// nothing for tick positions between centres.
fn band_label(labels: &[String], y: f64) -> String {
    let i = (y - 0.5).round();
    if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// A plotters error as an anyhow error (shared by every figure the harness draws).
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// One colour per stage of the stage breakdown (12 with the socket stages).
const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
];

/// A line chart with a logarithmic y axis (and x axis with `log_x`), one coloured line
/// with dots per series and a legend.
pub(crate) fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (x0, x1) = if x0 < x1 {
        (x0, x1)
    } else {
        (x0 * 0.5, x0 * 1.5 + 1.0)
    };
    let y_range = (y0.max(1e-3) * 0.5)..(y1.max(1e-3) * 2.0);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(err)?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_x {
        finish!(builder
            .build_cartesian_2d((x0..x1).log_scale(), y_range.log_scale())
            .map_err(err)?);
    } else {
        finish!(builder
            .build_cartesian_2d(x0..x1, y_range.log_scale())
            .map_err(err)?);
    }
    Ok(())
}

fn stage_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &[(String, Vec<(&'static str, f64)>)],
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let max = data
        .iter()
        .map(|(_, s)| s.iter().map(|p| p.1).sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let n = data.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "stage breakdown of one query (median, ms)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0.0..max, 0.0..n as f64)
        .map_err(err)?;
    let labels: Vec<String> = data.iter().map(|(l, _)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| band_label(&labels, *y))
        .x_desc("milliseconds")
        .draw()
        .map_err(err)?;
    for (k, stage) in STAGES[..STAGES.len() - 1].iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = data
            .iter()
            .enumerate()
            .map(|(i, (_, stages))| {
                let start: f64 = stages[..k].iter().map(|p| p.1).sum();
                let end = start + stages[k].1;
                Rectangle::new(
                    [(start, i as f64 + 0.15), (end, i as f64 + 0.85)],
                    color.filled(),
                )
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*stage)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn det_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, curves: &[Series]) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let floor = 1e-3;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "DET: false non-match vs false match rate",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((floor..1.0).log_scale(), (floor..1.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("false match rate")
        .y_desc("false non-match rate")
        .draw()
        .map_err(err)?;
    for (i, s) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = s.points.iter().map(|&(x, y)| (x.max(floor), y.max(floor)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn bar_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &[(String, f64, f64)],
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let n = data.len().max(1);
    let labels: Vec<String> = data.iter().map(|d| d.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "EER (blue) and F1 (orange) per preprocessing pipeline",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..1.0, 0.0..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| band_label(&labels, *y))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(data.iter().enumerate().map(|(i, d)| {
            Rectangle::new(
                [(0.0, i as f64 + 0.5), (d.1, i as f64 + 0.85)],
                COLORS[0].filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(data.iter().enumerate().map(|(i, d)| {
            Rectangle::new(
                [(0.0, i as f64 + 0.15), (d.2, i as f64 + 0.5)],
                COLORS[1].filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// Draws every figure the rows support into `dir`; returns their paths relative to the
/// run directory.
pub fn draw_all(
    rows: &[Row],
    scores: &BTreeMap<String, SchemeScores>,
    dir: &Path,
    svg: bool,
) -> Result<Vec<String>> {
    train::curve::register_font();
    let mut written = Vec::new();
    let mut emit = |name: &str,
                    draw: &dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
                    draw_svg: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>|
     -> Result<()> {
        let png = dir.join(format!("{name}.png"));
        {
            let root = BitMapBackend::new(&png, (900, 560)).into_drawing_area();
            draw(&root)?;
            root.present().map_err(err)?;
        }
        written.push(format!("figures/{name}.png"));
        if svg {
            let path = dir.join(format!("{name}.svg"));
            let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
            draw_svg(&root)?;
            root.present().map_err(err)?;
            written.push(format!("figures/{name}.svg"));
        }
        Ok(())
    };
    let users = latency_vs_users(rows);
    if !users.is_empty() {
        let (t, x, y) = (
            "latency vs enrolled users",
            "enrolled users",
            "median latency per query (ms)",
        );
        emit(
            "latency_vs_users",
            &|a| line_chart(a, t, x, y, &users, true),
            &|a| line_chart(a, t, x, y, &users, true),
        )?;
    }
    let clusters = latency_vs_clusters(rows);
    if clusters.iter().any(|s| s.points.len() > 1) {
        let (t, x, y) = (
            "latency vs cluster servers",
            "cluster servers",
            "median latency per query (ms)",
        );
        emit(
            "latency_vs_clusters",
            &|a| line_chart(a, t, x, y, &clusters, false),
            &|a| line_chart(a, t, x, y, &clusters, false),
        )?;
    }
    let stages = stage_breakdown(rows);
    if !stages.is_empty() {
        emit("stage_breakdown", &|a| stage_chart(a, &stages), &|a| {
            stage_chart(a, &stages)
        })?;
    }
    if !scores.is_empty() {
        let mut curves = Vec::new();
        // One curve per scheme run: the encrypted schemes' curves lie exactly on the
        // quantized one (their decrypted scores are equal), which the figure shows.
        for s in scores.values() {
            curves.push(Series {
                label: format!("{} · {} · {}-bit", s.preprocessing, s.scheme, s.bits),
                points: det(&s.scores.genuine, &s.scores.impostor),
            });
        }
        emit("det", &|a| det_chart(a, &curves), &|a| {
            det_chart(a, &curves)
        })?;
    }
    let acc = accuracy_by_preprocessing(rows);
    if !acc.is_empty() {
        emit("accuracy_by_preprocessing", &|a| bar_chart(a, &acc), &|a| {
            bar_chart(a, &acc)
        })?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::rows::Stat;
    use crate::harness::sweep::Point;
    use protocol::{ColumnarEngine, SchemeKind};

    fn row(scheme: SchemeKind, users: usize, clusters: usize, stage_ms: f64) -> Row {
        let point = Point {
            seed: 1,
            preprocessing: "none".into(),
            scheme,
            engine: ColumnarEngine::Cpu,
            params: "default".into(),
            encrypted_weights: false,
            bits: 8,
            users,
            clusters,
            probes: 1,
            deployment: Default::default(),
        };
        // Every stage takes stage_ms · (index + 1); the total is their sum.
        let mut stages: Vec<Stat> = (0..STAGES.len() - 1)
            .map(|i| Stat {
                median: stage_ms * (i + 1) as f64,
                min: 0.0,
                max: 0.0,
            })
            .collect();
        let total = stages.iter().map(|s| s.median).sum();
        stages.push(Stat {
            median: total,
            min: total,
            max: total,
        });
        Row {
            config_hash: "test".into(),
            key: point.key(),
            point,
            templates: "synthetic".into(),
            params_name: "-".into(),
            engine_running: "cpu".into(),
            accuracy: None,
            stages: stages.into_iter().map(Some).collect(),
            cluster_eval: Stat::default(),
            keygen_ms: 0.0,
            enrol_ms: 0.0,
            key_bytes: 0,
            gallery_bytes: 0,
            upload_bytes: 0,
            download_bytes: 0,
            fanout_bytes: None,
            gather_bytes: None,
            result_ciphertexts: 0,
            noise_budget_bits: None,
            exact: None,
            queries: 1,
            machine: "test".into(),
            wall_s: 0.0,
            deployment: None,
        }
    }

    #[test]
    fn users_figure_plots_each_schemes_totals_in_user_order() {
        let rows = vec![
            row(SchemeKind::BlindTouch, 2000, 1, 2.0),
            row(SchemeKind::BlindTouch, 500, 1, 1.0),
            row(SchemeKind::BlindTouch, 500, 3, 9.0), // other cluster count: not on this figure
            row(SchemeKind::Columnar, 500, 1, 0.5),
        ];
        let series = latency_vs_users(&rows);
        assert_eq!(series.len(), 2);
        let bt = series.iter().find(|s| s.label == "blindtouch").unwrap();
        assert_eq!(
            bt.points,
            vec![
                (500.0, rows[1].stage("total").median),
                (2000.0, rows[0].stage("total").median)
            ]
        );
        let col = series.iter().find(|s| s.label == "columnar (cpu)").unwrap();
        assert_eq!(col.points, vec![(500.0, rows[3].stage("total").median)]);
    }

    #[test]
    fn clusters_figure_uses_the_largest_gallery() {
        let rows = vec![
            row(SchemeKind::BlindTouch, 500, 1, 1.0),
            row(SchemeKind::BlindTouch, 500, 3, 2.0),
            row(SchemeKind::BlindTouch, 5000, 1, 3.0),
            row(SchemeKind::BlindTouch, 5000, 3, 4.0),
            row(SchemeKind::Plain, 5000, 1, 0.1),
        ];
        let series = latency_vs_clusters(&rows);
        assert_eq!(series.len(), 1, "plain has no clusters");
        assert_eq!(
            series[0].points,
            vec![
                (1.0, rows[2].stage("total").median),
                (3.0, rows[3].stage("total").median)
            ]
        );
    }

    #[test]
    fn stage_breakdown_holds_the_stage_medians_that_sum_to_the_total() {
        let rows = vec![
            row(SchemeKind::Columnar, 500, 1, 1.5),
            row(SchemeKind::Columnar, 100, 1, 7.0),
        ];
        let data = stage_breakdown(&rows);
        assert_eq!(data.len(), 1, "only the largest gallery");
        let (_, stages) = &data[0];
        assert_eq!(stages.len(), STAGES.len() - 1);
        for (name, v) in stages {
            assert_eq!(*v, rows[0].stage(name).median);
        }
        let sum: f64 = stages.iter().map(|s| s.1).sum();
        assert!((sum - rows[0].stage("total").median).abs() < 1e-9);
    }

    #[test]
    fn det_points_are_the_error_rates_at_each_threshold() {
        let genuine = [3.0, 4.0, 5.0];
        let impostor = [1.0, 2.0, 3.5];
        let points = det(&genuine, &impostor);
        assert_eq!(points.len(), 6);
        // Lowest threshold: every impostor matches, no genuine is missed.
        assert_eq!(points[0], (1.0, 0.0));
        // Highest: no impostor matches, two of three genuine are missed.
        assert_eq!(points[5], (0.0, 2.0 / 3.0));
        assert!(points
            .windows(2)
            .all(|w| w[0].0 >= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn figures_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row(SchemeKind::BlindTouch, 500, 1, 1.0),
            row(SchemeKind::BlindTouch, 2000, 1, 2.0),
            row(SchemeKind::BlindTouch, 2000, 3, 2.5),
        ];
        let written = draw_all(&rows, &BTreeMap::new(), dir.path(), true).unwrap();
        for name in ["latency_vs_users", "latency_vs_clusters", "stage_breakdown"] {
            assert!(
                written.contains(&format!("figures/{name}.png")),
                "{written:?}"
            );
            let png = std::fs::read(dir.path().join(format!("{name}.png"))).unwrap();
            assert_eq!(&png[..4], b"\x89PNG");
            assert!(dir.path().join(format!("{name}.svg")).is_file());
        }
    }
}
