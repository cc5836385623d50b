//! Training configs: the committed one parses; mistakes name the file, line and field.

use std::path::Path;

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
