//! Training configs: the committed one parses; mistakes name the file, line and field.

use std::path::Path;
use train::config::{Objective, Schedule};

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("train.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = "
data:
  synthetic: { preset: socofing, fingers: 2, seed: 7, altered: false }
  pipeline: blindtouch-socofing
  augmentation: blindtouch-socofing
model: { input_size: 64, width: 0.25 }
training: { epochs: 2, batch_size: 8, learning_rate: 0.001, patience: 2, seed: 1 }
out: /tmp/x
";

#[test]
fn committed_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/train-socofing-small.yaml");
    let config = train::read_config(&path).unwrap();
    assert_eq!(config.model.input_size, 64);
    assert_eq!(config.pipeline().unwrap().name, "blindtouch-socofing");
    assert!(!config.augmenter().unwrap().ops.is_empty());
}

#[test]
fn every_committed_training_config_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("train-") && name.ends_with(".yaml") {
            let config = train::read_config(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 4, "{seen} training configs");
    let recipe = train::read_config(&dir.join("train-socofing.yaml")).unwrap();
    assert_eq!(recipe.training.objective, Objective::InBatch);
    assert_eq!(recipe.training.schedule, Schedule::Cosine);
}

#[test]
fn the_default_objective_and_schedule_leave_older_recipes_digests_alone() {
    // Recipes written before `objective` and `schedule` existed serialize as they did, so
    // their model digests (the harness's cache keys) and checkpoints stay valid.
    let dir = tempfile::tempdir().unwrap();
    let config = train::read_config(&write(dir.path(), GOOD)).unwrap();
    assert_eq!(config.training.objective, Objective::Pairs);
    let json = serde_json::to_value(&config).unwrap();
    let training = json["training"].as_object().unwrap();
    assert!(!training.contains_key("objective") && !training.contains_key("schedule"));
    // Spelled out, they change the digest; a schedule keeps the epoch budget in it.
    let in_batch = write(
        dir.path(),
        &GOOD.replace("seed: 1 }", "seed: 1, objective: in-batch }"),
    );
    let in_batch = train::read_config(&in_batch).unwrap();
    assert_ne!(
        train::checkpoint::recipe_digest(&in_batch),
        train::checkpoint::recipe_digest(&config)
    );
    let mut longer = config.clone();
    longer.training.epochs += 5;
    assert_eq!(
        train::checkpoint::recipe_digest(&longer),
        train::checkpoint::recipe_digest(&config)
    );
    let mut cosine = config.clone();
    cosine.training.schedule = Schedule::Cosine;
    let mut cosine_longer = cosine.clone();
    cosine_longer.training.epochs += 5;
    assert_ne!(
        train::checkpoint::recipe_digest(&cosine_longer),
        train::checkpoint::recipe_digest(&cosine)
    );
    let unknown = write(
        dir.path(),
        &GOOD.replace("seed: 1 }", "seed: 1, objective: triplets }"),
    );
    let message = train::read_config(&unknown).unwrap_err().to_string();
    assert!(message.contains("triplets"), "{message}");
}

#[test]
fn mistakes_are_named_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    assert!(train::read_config(&write(dir.path(), GOOD)).is_ok());

    let unknown = GOOD.replace("width: 0.25", "width: 0.25, depth: 3");
    let err = train::read_config(&write(dir.path(), &unknown))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.yaml:6") && err.contains("depth"),
        "{err}"
    );

    let wrong_type = GOOD.replace("epochs: 2", "epochs: many");
    let err = train::read_config(&write(dir.path(), &wrong_type))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.yaml:7") && err.contains("epochs"),
        "{err}"
    );

    let both = GOOD.replace("  pipeline:", "  path: /data\n  pipeline:");
    let err = train::read_config(&write(dir.path(), &both))
        .unwrap_err()
        .to_string();
    assert!(err.contains("either `path` or `synthetic`"), "{err}");

    let bad_size = GOOD.replace("input_size: 64", "input_size: 50");
    let err = train::read_config(&write(dir.path(), &bad_size))
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple of 32"), "{err}");

    let missing = train::read_config(&dir.path().join("absent.yaml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.yaml"), "{missing}");
}
