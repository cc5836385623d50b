//! Images without pixels, with inconsistent data or with absurd sizes are errors (never
//! panics) in loading, resizing, preprocessing pipelines and the realism analysis.

use datasets::image::MAX_PIXELS;
use datasets::preprocess::{
    dilate3x3, erode3x3, resize_linear, sobel, try_resize_linear, Pipeline,
};
use datasets::{realism, Gray8, GrayF};
use std::path::Path;

/// Images with a zero dimension, as code may build them (the fields are public).
fn empty_images() -> Vec<Gray8> {
    vec![
        Gray8 {
            width: 0,
            height: 5,
            data: vec![],
        },
        Gray8 {
            width: 5,
            height: 0,
            data: vec![],
        },
        Gray8 {
            width: 0,
            height: 0,
            data: vec![],
        },
    ]
}

fn pipelines() -> Vec<Pipeline> {
    ["blindtouch-socofing", "blindtouch-polyu", "identity"]
        .iter()
        .map(|name| Pipeline::preset(name, 32).unwrap())
        .collect()
}

#[test]
fn zero_size_images_are_refused_by_pipelines_and_resize() {
    for image in empty_images() {
        let dims = format!("{}×{}", image.width, image.height);
        for pipeline in pipelines() {
            let err = pipeline.apply(&image).unwrap_err().to_string();
            assert!(
                err.contains(&dims) && err.contains("at least one row and one column"),
                "{}: {err}",
                pipeline.name
            );
        }
        let err = try_resize_linear(&image, 32, 32).unwrap_err().to_string();
        assert!(err.contains(&dims), "{err}");
        // The infallible resize does not panic: nothing to interpolate gives black.
        let out = resize_linear(&image, 7, 3);
        assert_eq!((out.width, out.height), (7, 3));
        assert!(out.data.iter().all(|&v| v == 0));
        // Morphology keeps the (empty) shape; Sobel refuses it.
        assert_eq!(dilate3x3(&image), image);
        assert_eq!(erode3x3(&image), image);
        let err = sobel(&image, 0, 1, 3).unwrap_err().to_string();
        assert!(err.contains(&dims), "{err}");
    }
    // A resize to nothing is refused too.
    let image = Gray8::filled(4, 4, 9);
    assert!(try_resize_linear(&image, 0, 4)
        .unwrap_err()
        .to_string()
        .contains("empty image"));
    assert_eq!(
        try_resize_linear(&image, 2, 2).unwrap(),
        Gray8::filled(2, 2, 9)
    );
}

#[test]
fn zero_size_images_are_refused_by_the_realism_analysis() {
    for image in empty_images() {
        let dims = format!("{}×{}", image.width, image.height);
        let err = realism::analyse(&image)
            .err()
            .expect("an empty image has no print to analyse")
            .to_string();
        assert!(err.contains(&dims), "{err}");
    }
    // One row or one column is tiny but not empty: analysed without a panic.
    for (w, h) in [(1, 1), (1, 40), (40, 1), (3, 3)] {
        let a = realism::analyse(&Gray8::filled(w, h, 200)).unwrap();
        assert_eq!(a.mask.len(), w * h);
        assert!(a.minutiae.is_empty() && a.period.is_none());
    }
}

#[test]
fn data_that_does_not_match_the_size_is_refused() {
    let short = Gray8 {
        width: 4,
        height: 4,
        data: vec![0; 15],
    };
    for pipeline in pipelines() {
        let err = pipeline.apply(&short).unwrap_err().to_string();
        assert!(err.contains("holds 15 values, expected 16"), "{err}");
    }
    assert!(realism::analyse(&short).is_err());
    assert!(sobel(&short, 1, 0, 3).is_err());
    assert!(try_resize_linear(&short, 8, 8).is_err());
    assert_eq!(resize_linear(&short, 8, 8), Gray8::filled(8, 8, 0));
}

#[test]
fn constructors_check_dimensions_and_the_pixel_limit() {
    assert_eq!(MAX_PIXELS, 8192 * 8192);
    assert!(Gray8::new(3, 2, vec![1; 6]).is_ok());
    let err = Gray8::new(0, 3, vec![]).unwrap_err().to_string();
    assert!(err.contains("0×3"), "{err}");
    let err = Gray8::new(3, 2, vec![1; 5]).unwrap_err().to_string();
    assert!(err.contains("holds 5 values, expected 6"), "{err}");
    // One row over the limit is refused before the data is looked at…
    let err = Gray8::new(8192, 8193, vec![]).unwrap_err().to_string();
    assert!(
        err.contains("8192×8193") && err.contains("8192×8192"),
        "{err}"
    );
    // …and at the limit only the (empty) data is wrong, not the size.
    let err = Gray8::new(8192, 8192, vec![]).unwrap_err().to_string();
    assert!(err.contains("holds 0 values"), "{err}");
    // Sizes whose product overflows are refused, not wrapped.
    assert!(Gray8::new(usize::MAX, 2, vec![]).is_err());
    assert!(GrayF::new(0, 1, vec![]).is_err());
    assert!(GrayF::new(2, 2, vec![0.5; 4]).is_ok());
    assert!(GrayF::new(100_000, 100_000, vec![]).is_err());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims `width` × `height` 8-bit grey pixels, with one empty IDAT
/// chunk (the decoder reads up to the first one for the dimensions).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // depth 8, grey, deflate, adaptive, no interlace
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // zlib of nothing
    chunk(b"IEND", &[]);
    png
}

fn load_err(path: &Path) -> String {
    Gray8::load(path).unwrap_err().to_string()
}

#[test]
fn an_oversized_image_header_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, png_header(100_000, 100_000)).unwrap();
    let err = load_err(&huge);
    assert!(
        err.contains("huge.png") && err.contains("100000×100000") && err.contains("8192×8192"),
        "{err}"
    );
    // Just over the limit, too.
    let over = dir.path().join("over.png");
    std::fs::write(&over, png_header(8192, 8193)).unwrap();
    let err = load_err(&over);
    assert!(
        err.contains("over.png") && err.contains("8192×8193"),
        "{err}"
    );

    // A header claiming no columns is refused (by the codec or by the check), naming the file.
    let flat = dir.path().join("flat.png");
    std::fs::write(&flat, png_header(0, 10)).unwrap();
    assert!(load_err(&flat).contains("flat.png"));

    // A real image still loads.
    let good = dir.path().join("good.png");
    let mut image = Gray8::filled(6, 4, 0);
    for (i, v) in image.data.iter_mut().enumerate() {
        *v = (i * 10) as u8;
    }
    image.save(&good).unwrap();
    assert_eq!(Gray8::load(&good).unwrap(), image);
}
