//! Checkpoints: a run stopped after 2 epochs and resumed ends with the same weights,
//! history and head as an uninterrupted run; a checkpoint of another recipe is refused.

use std::path::Path;
use train::config::TrainConfig;
use train::{CpuTraining, TrainError};

/// A tiny recipe (30 synthetic prints, 32×32, width 0.125, 3 epochs) writing to `out`,
/// with `extra` lines in its `training:` block.
fn config(out: &Path, data: Option<&Path>, learning_rate: f64, extra: &str) -> TrainConfig {
    let data = match data {
        Some(path) => format!("path: {}", path.display()),
        None => "synthetic: { preset: socofing, fingers: 3, seed: 7, altered: false }".into(),
    };
    let yaml = format!(
        "data:\n  {data}\n  pipeline: blindtouch-socofing\n  augmentation: blindtouch-socofing\n  \
         split_seed: 42\nmodel:\n  input_size: 32\n  width: 0.125\ntraining:\n  epochs: 3\n  \
         batch_size: 8\n  learning_rate: {learning_rate}\n  patience: 10\n  seed: 1\n{extra}out: {}\n",
        out.display()
    );
    let path = out.with_extension("yaml");
    std::fs::write(&path, yaml).unwrap();
    train::read_config(&path).unwrap()
}

#[test]
fn a_stopped_run_resumes_to_the_uninterrupted_runs_weights() {
    stopped_run_resumes("");
}

/// The in-batch objective with a cosine schedule: the rate of a resumed epoch comes from
/// its number, and its batches from the restored generator.
#[test]
fn a_stopped_in_batch_cosine_run_resumes_to_the_same_weights() {
    stopped_run_resumes("  objective: in-batch\n  schedule: cosine\n");
}

/// Burn's parameter initialisation draws from one process-wide generator, seeded per
/// run: two runs at once would interleave their draws.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn stopped_run_resumes(extra: &str) {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (stopped, whole) = (tmp.path().join("stopped"), tmp.path().join("whole"));
    // One synthetic set for both runs.
    let data = train::dataset_folder(&config(&stopped, None, 1e-3, extra)).unwrap();
    let device = Default::default();

    let first = config(&stopped, Some(&data), 1e-3, extra);
    match train::run_with::<CpuTraining>(&first, &device, false, false, Some(2)) {
        Err(TrainError::Stopped { epoch: 2, .. }) => {}
        Err(e) => panic!("expected a stop after epoch 2, got {e}"),
        Ok(_) => panic!("expected a stop after epoch 2, the run went on"),
    }
    let checkpoint = train::checkpoint_folder(&first);
    assert!(checkpoint.join("epoch-0002/state.json").exists());
    assert!(
        !checkpoint.join("epoch-0001").exists(),
        "older checkpoints are removed"
    );
    assert!(
        !stopped.join("model.mpk").exists(),
        "a stopped run exports nothing"
    );

    // A checkpoint of another recipe is not resumed from.
    let other = config(&stopped, Some(&data), 2e-3, extra);
    let refused = train::run_with::<CpuTraining>(&other, &device, false, true, None);
    let message = refused
        .err()
        .expect("another recipe is refused")
        .to_string();
    assert!(message.contains("another recipe"), "{message}");

    let resumed = train::run_with::<CpuTraining>(&first, &device, false, true, None).unwrap();
    let uninterrupted =
        train::run::<CpuTraining>(&config(&whole, Some(&data), 1e-3, extra), &device, false)
            .unwrap();

    assert_eq!(resumed.history.len(), 3);
    assert_eq!(resumed.best_epoch, uninterrupted.best_epoch);
    for (a, b) in resumed.history.iter().zip(&uninterrupted.history) {
        assert_eq!(
            (
                a.epoch,
                a.train_loss,
                a.validation_loss,
                a.validation_accuracy
            ),
            (
                b.epoch,
                b.train_loss,
                b.validation_loss,
                b.validation_accuracy
            )
        );
    }
    // Value for value: the whole network written (its embeddings of the same images; the
    // files differ only in Burn's random parameter ids) and the head.
    let embed = |dir: &Path| -> Vec<f32> {
        let (model, _) = train::export::load::<train::CpuBackend>(dir, &device).unwrap();
        let data: Vec<f32> = (0..4 * 32 * 32)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let images = burn::tensor::Tensor::<train::CpuBackend, 4>::from_data(
            burn::tensor::TensorData::new(data, [4, 1, 32, 32]),
            &device,
        );
        model.embed(images).into_data().to_vec::<f32>().unwrap()
    };
    assert_eq!(embed(&stopped), embed(&whole));
    let (a, b) = (&resumed.exported, &uninterrupted.exported);
    assert_eq!(a.head.fc16_weight, b.head.fc16_weight);
    assert_eq!(a.head.fc1_weight, b.head.fc1_weight);
    assert_eq!(
        (a.head.fc1_bias, a.threshold_logit),
        (b.head.fc1_bias, b.threshold_logit)
    );
    assert_eq!(a.calibration.abs_max, b.calibration.abs_max);
}
