//! Loaders on small fixture trees in the SOCOFing and PolyU layouts, and the protocols
//! built on them.

use datasets::loaders::{self, Format, PolyuSubset, SocofingName, Variant};
use datasets::splits;
use datasets::Gray8;
use std::path::Path;

fn write_image(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Gray8::filled(8, 9, 200).save(path).unwrap();
}

const FINGERS: [&str; 5] = ["thumb", "index", "middle", "ring", "little"];

/// `subjects` subjects × 10 fingers under archive/SOCOFing (a nested Kaggle archive),
/// with Easy alterations for subject 1.
fn socofing_tree(dir: &Path, subjects: u32) -> std::path::PathBuf {
    let root = dir.join("archive").join("SOCOFing");
    for s in 1..=subjects {
        for (sex, hand) in [("M", "Left"), ("M", "Right")] {
            for f in FINGERS {
                write_image(
                    &root
                        .join("Real")
                        .join(format!("{s}__{sex}_{hand}_{f}_finger.BMP")),
                );
            }
        }
    }
    for kind in ["CR", "Obl", "Zcut"] {
        write_image(
            &root
                .join("Altered/Altered-Easy")
                .join(format!("1__M_Left_index_finger_{kind}.BMP")),
        );
    }
    std::fs::write(root.join("Real").join("Thumbs.db"), b"junk").unwrap();
    root
}

#[test]
fn socofing_names_parse() {
    let n = SocofingName::parse("12__F_Right_little_finger_Zcut.BMP").unwrap();
    assert_eq!((n.subject, n.sex, n.hand, n.finger), (12, 'F', 1, 4));
    assert_eq!(n.alteration.as_deref(), Some("Zcut"));
    assert!(SocofingName::parse("12__F_Right_little_finger.BMP")
        .unwrap()
        .alteration
        .is_none());
    for bad in [
        "12_F_Right_little_finger.BMP",
        "x__F_Right_little_finger.BMP",
        "1__F_Up_little_finger.BMP",
        "1__F_Right_little_finger_XX.BMP",
    ] {
        assert!(SocofingName::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn socofing_tree_counts_identities_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = socofing_tree(tmp.path(), 12);
    let ds = loaders::load(tmp.path()).unwrap();
    assert_eq!(ds.format, Format::Socofing);
    assert_eq!(ds.root, root, "nested archive root found");
    assert_eq!(ds.fingers, 120);
    assert_eq!(ds.real().len(), 120);
    assert_eq!(ds.samples.len(), 123);
    // Numeric subject order: subject 2 comes before subject 10.
    let first_of = |name: &str| {
        ds.samples
            .iter()
            .find(|s| s.finger_name == name)
            .unwrap()
            .finger
    };
    assert!(first_of("2__M_Left_thumb") < first_of("10__M_Left_thumb"));
    assert_eq!(first_of("1__M_Left_thumb"), 0);
    assert_eq!(first_of("1__M_Left_index"), 1);
    assert_eq!(first_of("1__M_Right_thumb"), 5);
    let altered: Vec<_> = ds
        .samples
        .iter()
        .filter(|s| s.variant != Variant::Real)
        .collect();
    assert_eq!(altered.len(), 3);
    assert!(altered.iter().all(|s| s.finger == 1));
    assert!(matches!(&altered[0].variant, Variant::Altered { level, .. } if level == "Easy"));
}

#[test]
fn socofing_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let err = loaders::load_socofing(&tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");
    let err = loaders::load_socofing(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("Real"), "{err}");

    let root = socofing_tree(tmp.path(), 1);
    write_image(&root.join("Real").join("whatever.BMP"));
    let err = loaders::load_socofing(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("whatever.BMP") && err.contains("file name"),
        "{err}"
    );
    std::fs::remove_file(root.join("Real").join("whatever.BMP")).unwrap();

    write_image(&root.join("Altered/Altered-Hard/7__M_Left_index_finger_CR.BMP"));
    let err = loaders::load_socofing(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("no real image"), "{err}");
    std::fs::remove_file(root.join("Altered/Altered-Hard/7__M_Left_index_finger_CR.BMP")).unwrap();

    // A corrupt image is found by decoding, with its path.
    let bad = root.join("Real").join("1__M_Left_thumb_finger.BMP");
    std::fs::write(&bad, b"BM not really a bitmap").unwrap();
    let err = Gray8::load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("1__M_Left_thumb_finger.BMP") && err.contains("decode"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("Real")).unwrap();
    assert!(loaders::load_socofing(empty.path())
        .unwrap_err()
        .to_string()
        .contains("no SOCOFing BMP"));
}

/// Session 1: fingers 1..=n1 × 3 impressions; session 2: fingers 1..=n2 × 2 impressions.
fn polyu_tree(dir: &Path, n1: u32, n2: u32) {
    let base =
        dir.join("Cross_Fingerprint_Images_Database/processed_contactless_2d_fingerprint_images");
    for (session, n, imps) in [("first_session", n1, 3), ("second_session", n2, 2)] {
        for f in 1..=n {
            for i in 1..=imps {
                write_image(
                    &base
                        .join(session)
                        .join(format!("p{f}"))
                        .join(format!("p{i}.bmp")),
                );
            }
        }
    }
    let contact =
        dir.join("Cross_Fingerprint_Images_Database/contact-based_fingerprints/first_session");
    for f in 1..=n1 {
        write_image(&contact.join(format!("{f}_1.jpg")));
    }
}

#[test]
fn polyu_tree_orders_numerically_and_links_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    polyu_tree(tmp.path(), 12, 5);
    let ds = loaders::load(tmp.path()).unwrap();
    assert_eq!(ds.format, Format::Polyu);
    assert_eq!(ds.fingers, 12);
    assert_eq!(ds.samples.len(), 12 * 3 + 5 * 2);
    let names: Vec<&str> = ds.samples.iter().map(|s| s.finger_name.as_str()).collect();
    let p2 = names.iter().position(|n| *n == "p2").unwrap();
    let p10 = names.iter().position(|n| *n == "p10").unwrap();
    assert!(p2 < p10, "p2 sorts before p10");
    let p3: Vec<_> = ds
        .samples
        .iter()
        .filter(|s| s.finger_name == "p3")
        .collect();
    assert_eq!(p3.len(), 5, "same finger in both sessions");
    assert!(p3.iter().all(|s| s.finger == 2));
    assert_eq!(
        p3.iter()
            .map(|s| (s.session, s.impression))
            .collect::<Vec<_>>(),
        vec![(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    );

    let contact = loaders::load_polyu(tmp.path(), PolyuSubset::ContactBased).unwrap();
    assert_eq!(contact.samples.len(), 12);
    let err = loaders::load_polyu(tmp.path(), PolyuSubset::Contactless)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contactless_2d_fingerprint_images"), "{err}");
}

#[test]
fn polyu_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    polyu_tree(tmp.path(), 3, 0);
    let base = tmp.path().join("Cross_Fingerprint_Images_Database/processed_contactless_2d_fingerprint_images/first_session");
    write_image(&base.join("finger9/p1.bmp"));
    let err = loaders::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("finger9") && err.contains("p{finger}"),
        "{err}"
    );
    std::fs::remove_dir_all(base.join("finger9")).unwrap();
    write_image(&base.join("p1/img.bmp"));
    assert!(loaders::load(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("img.bmp"));
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("random/stuff")).unwrap();
    let err = loaders::detect(other.path()).unwrap_err().to_string();
    assert!(err.contains("neither a SOCOFing tree"), "{err}");
}

#[test]
fn socofing_protocol_split_sizes_and_no_leak() {
    let tmp = tempfile::tempdir().unwrap();
    socofing_tree(tmp.path(), 30); // 300 real images
    let ds = loaders::load(tmp.path()).unwrap();
    let split = splits::socofing_blindtouch(&ds, 7).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len(), split.test.len()),
        (180, 60, 60)
    );
    split.check_disjoint(&ds).unwrap();
    assert_eq!(
        split,
        splits::socofing_blindtouch(&ds, 7).unwrap(),
        "seeded"
    );
    assert_ne!(
        split.test,
        splits::socofing_blindtouch(&ds, 8).unwrap().test
    );
    assert!(split
        .test
        .iter()
        .all(|&i| ds.samples[i].variant == Variant::Real));

    // Pairs on single-impression fingers: augmented-copy genuines, labelled impostors.
    let pairs = splits::verification_pairs(&ds, &split.test, 100, 1).unwrap();
    let genuine: Vec<_> = pairs.iter().filter(|p| p.genuine).collect();
    assert_eq!(genuine.len(), 60);
    assert!(genuine.iter().all(|p| p.a == p.b && p.augment_b));
    let impostors: Vec<_> = pairs.iter().filter(|p| !p.genuine).collect();
    assert_eq!(impostors.len(), 100);
    assert!(impostors
        .iter()
        .all(|p| ds.samples[p.a].finger != ds.samples[p.b].finger));
}

#[test]
fn polyu_protocol_excludes_leaking_session_two_images() {
    let tmp = tempfile::tempdir().unwrap();
    polyu_tree(tmp.path(), 20, 16);
    let ds = loaders::load(tmp.path()).unwrap();
    let split = splits::polyu_blindtouch(&ds, 14, 0.25, 3).unwrap();
    split.check_disjoint(&ds).unwrap();
    // Test: session-1 fingers 14..20 → 6 fingers × 3 impressions.
    assert_eq!(split.test.len(), 18);
    assert!(split
        .test
        .iter()
        .all(|&i| ds.samples[i].session == 1 && ds.samples[i].finger >= 14));
    // Session-2 images of test fingers 14, 15 (4 images) are excluded, not trained on.
    let used = split.train.len() + split.validation.len() + split.test.len();
    assert_eq!(used, ds.samples.len() - 4);
    assert!(
        split.notes[0].contains("4 session-2 images"),
        "{:?}",
        split.notes
    );
    // 14 training fingers, a quarter (4 rounded from 3.5) held out for validation.
    assert_eq!(splits::Split::fingers(&ds, &split.validation).len(), 4);
    assert!(splits::polyu_blindtouch(&ds, 25, 0.2, 1).is_err());

    // Genuine pairs: all impression pairs of a finger (3 per test finger).
    let pairs = splits::verification_pairs(&ds, &split.test, 10, 2).unwrap();
    assert_eq!(pairs.iter().filter(|p| p.genuine).count(), 6 * 3);
    for p in &pairs {
        assert_eq!(p.genuine, ds.samples[p.a].finger == ds.samples[p.b].finger);
        assert!(!p.augment_b);
    }
}

#[test]
fn identification_sets_enrol_one_impression_and_withhold_fingers() {
    let tmp = tempfile::tempdir().unwrap();
    polyu_tree(tmp.path(), 20, 0);
    let ds = loaders::load(tmp.path()).unwrap();
    let all: Vec<usize> = (0..ds.samples.len()).collect();
    let set = splits::identification(&ds, &all, 0.25, 5).unwrap();
    assert_eq!(set.gallery.len(), 15);
    let non_mated = set.probes.iter().filter(|p| p.1.is_none()).count();
    assert_eq!(non_mated, 5 * 3);
    for &(probe, mate) in &set.probes {
        match mate {
            Some(slot) => {
                let enrolled = set.gallery[slot];
                assert_eq!(ds.samples[probe].finger, ds.samples[enrolled].finger);
                assert_ne!(probe, enrolled);
            }
            None => assert!(set
                .gallery
                .iter()
                .all(|&g| ds.samples[g].finger != ds.samples[probe].finger)),
        }
    }
}
