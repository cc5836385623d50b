//! Resize, dilate, erode and Sobel k=9 must equal OpenCV's output exactly. The fixtures
//! under fixtures/opencv/ were written by fixtures/make_opencv_fixtures.py (its VERSION
//! file records the OpenCV version).

use datasets::preprocess::{dilate3x3, erode3x3, resize_linear, sobel};
use datasets::Gray8;
use std::path::PathBuf;

const INPUTS: [&str; 3] = ["socofing_96x103", "odd_35x22", "odd_41x37"];
const RESIZES: [(usize, usize); 3] = [(224, 224), (40, 30), (97, 61)];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opencv")
        .join(name)
}

fn load(name: &str) -> Gray8 {
    Gray8::load(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_same(ours: &Gray8, theirs: &Gray8, what: &str) {
    assert_eq!(
        (ours.width, ours.height),
        (theirs.width, theirs.height),
        "{what}: size"
    );
    let diff = ours
        .data
        .iter()
        .zip(&theirs.data)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        diff,
        0,
        "{what}: {diff} of {} pixels differ",
        ours.data.len()
    );
}

#[test]
fn resize_matches_opencv_inter_linear_exactly() {
    for name in INPUTS {
        let input = load(&format!("{name}.png"));
        for (w, h) in RESIZES {
            let expected = load(&format!("{name}_resize_{w}x{h}.png"));
            assert_same(
                &resize_linear(&input, w, h),
                &expected,
                &format!("{name} → {w}×{h}"),
            );
        }
    }
}

#[test]
fn dilate_and_erode_match_opencv_exactly() {
    for name in INPUTS {
        let input = load(&format!("{name}.png"));
        assert_same(
            &dilate3x3(&input),
            &load(&format!("{name}_dilate.png")),
            &format!("{name} dilate"),
        );
        assert_same(
            &erode3x3(&input),
            &load(&format!("{name}_erode.png")),
            &format!("{name} erode"),
        );
    }
}

#[test]
fn sobel_dy_k9_matches_opencv_exactly() {
    for name in INPUTS {
        let input = load(&format!("{name}.png"));
        let bytes = std::fs::read(fixture(&format!("{name}_sobel_dy_k9.f64"))).unwrap();
        let expected: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ours = sobel(&input, 0, 1, 9).unwrap();
        assert_eq!(ours.data.len(), expected.len(), "{name}");
        let diff = ours
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{name}: {diff} Sobel values differ");
        assert!(expected.iter().any(|&v| v != 0.0), "fixture is not trivial");
    }
}
