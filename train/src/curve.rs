//! The training-curve PNG: losses and validation accuracy per epoch.

use crate::error::{Result, TrainError};
use crate::training::EpochStats;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the embedded DejaVu Sans font with plotters (no system fonts needed).
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws train/validation loss (left) and validation accuracy (right) to `path`.
pub fn draw(history: &[EpochStats], best_epoch: usize, path: &Path) -> Result<()> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| {
        TrainError::model(path, format!("drawing the training curve: {e}"))
    };
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(500);
    let epochs = history.len().max(2) as f64;
    let max_loss = history
        .iter()
        .flat_map(|h| [h.train_loss, h.validation_loss])
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;

    let mut chart = ChartBuilder::on(&left)
        .caption("loss (binary cross-entropy)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..epochs, 0.0..max_loss)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| fail(&e))?;
    let series = |f: fn(&EpochStats) -> f64| history.iter().map(move |h| (h.epoch as f64, f(h)));
    chart
        .draw_series(LineSeries::new(
            series(|h| h.train_loss),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            series(|h| h.validation_loss),
            RED.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .draw_series(std::iter::once(Circle::new(
            (
                best_epoch as f64,
                history
                    .get(best_epoch.saturating_sub(1))
                    .map_or(0.0, |h| h.validation_loss),
            ),
            5,
            RED.filled(),
        )))
        .map_err(|e| fail(&e))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| fail(&e))?;

    let mut acc = ChartBuilder::on(&right)
        .caption("validation accuracy (logit ≥ 0)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..epochs, 0.4..1.0)
        .map_err(|e| fail(&e))?;
    acc.configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| fail(&e))?;
    acc.draw_series(LineSeries::new(
        series(|h| h.validation_accuracy),
        GREEN.stroke_width(2),
    ))
    .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
