//! The scheme comparison (`touchstone run` of a config with a `compare:` section): every
//! protection scheme — the encrypted 1:N family, the unprotected embedding login, IoM
//! hashing, negative databases — enrolled on the same model's templates of the same test
//! split, through one interface (`train::protection`), with the same metrics.
//!
//! Thresholds: the encrypted family decides with the model's own τ; the other schemes
//! get theirs on the validation split (the equal-error point), never on the test split.
//! Unlinkability and renewability of the revocable schemes follow Gomez-Barrero et al.,
//! "General framework to evaluate unlinkability in biometric template protection
//! systems", IEEE TIFS 13(6), 2018: mated pairs are two templates of one finger under two
//! tokens (enrolment capture and a later capture), non-mated pairs two fingers under two
//! tokens; D↔sys ∈ [0, 1] (0 = unlinkable). Renewability: the EER of the old template
//! against the finger's query under the new token (≈ 50% = the old template is useless).

use super::config::{check_name, OutputConfig};
use super::manifest;
use anyhow::{bail, Context, Result};
use datasets::metrics;
use datasets::synth::SynthConfig;
use plotters::prelude::*;
use protect::iom::{self, GrpIom, UrpIom};
use protect::ndb::NdbParams;
use protocol::{build_matcher, ColumnarEngine, SchemeConfig, SchemeKind};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use train::evaluation::{Part, TestSet};
use train::protection::{
    self, EmbeddingDbScheme, Features, IomKind, IomScheme, MatcherScheme, NdbScheme,
    ProtectionScheme,
};

/// A config file of this study.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub compare: CompareConfig,
    #[serde(default)]
    pub outputs: OutputConfig,
}

/// The comparison's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Generate this synthetic set, or read `path`.
    #[serde(default)]
    pub synthetic: Option<SynthConfig>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// The model folder whose embeddings and templates every scheme uses.
    pub model: PathBuf,
    /// Seed of the probes' augmentation, the pairs and the tokens.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Captures per user available to schemes that average (1..=8).
    #[serde(default = "default_captures")]
    pub captures: usize,
    /// 1:N queries per scheme (the first identification probes; rank-1 over these).
    pub identify_probes: usize,
    /// Users in the unlinkability / renewability pairs.
    #[serde(default = "default_link_users")]
    pub link_users: usize,
    pub schemes: Vec<SchemeSpec>,
}

fn default_split_seed() -> u64 {
    42
}
fn default_seed() -> u64 {
    1
}
fn default_captures() -> usize {
    4
}
fn default_link_users() -> usize {
    200
}

/// One scheme and its parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SchemeSpec {
    Plain,
    Quantized,
    Blindtouch,
    Columnar {
        #[serde(default = "default_engine")]
        engine: ColumnarEngine,
    },
    EmbeddingDb {
        features: Features,
        captures: usize,
    },
    IomGrp {
        features: Features,
        m: usize,
        q: usize,
    },
    IomUrp {
        features: Features,
        m: usize,
        w: usize,
        p: usize,
    },
    Ndb {
        features: Features,
        bits: usize,
        k: usize,
        r: usize,
        p: Vec<f64>,
    },
}

fn default_engine() -> ColumnarEngine {
    ColumnarEngine::Cpu
}

/// Does this YAML text hold a scheme comparison (a top-level `compare:` key)?
pub fn is_study(text: &str) -> bool {
    super::study::has_section(text, "compare")
}

const MAX_PROBES: usize = 100_000;

/// Parses and validates; errors name the file, the line and the field.
pub fn parse(text: &str, path: &Path, check_files: bool) -> Result<StudyConfig> {
    let config: StudyConfig = super::study::deserialize(text, path)?;
    let bad = |field: &str, why: String| -> Result<StudyConfig> {
        bail!("{}: field `compare.{field}`: {why}", path.display())
    };
    if let Err(why) = check_name(&config.name) {
        bail!("{}: field `name`: {why}", path.display());
    }
    let c = &config.compare;
    match (&c.synthetic, &c.path) {
        (Some(_), None) => {}
        (None, Some(p)) if !check_files || p.is_dir() => {}
        (None, Some(p)) => return bad("path", format!("{} is not a folder", p.display())),
        _ => {
            return bad(
                "synthetic",
                "give exactly one of `synthetic` or `path`".into(),
            )
        }
    }
    if check_files && !c.model.join("head.json").is_file() {
        return bad(
            "model",
            format!("no model at {} (no head.json)", c.model.display()),
        );
    }
    if !(1..=8).contains(&c.captures) {
        return bad("captures", "must be in 1..=8".into());
    }
    if c.identify_probes == 0 || c.identify_probes > MAX_PROBES {
        return bad("identify_probes", format!("must be in 1..={MAX_PROBES}"));
    }
    if c.link_users < 2 || c.link_users > MAX_PROBES {
        return bad("link_users", format!("must be in 2..={MAX_PROBES}"));
    }
    if c.schemes.is_empty() {
        return bad("schemes", "list at least one scheme".into());
    }
    for (i, s) in c.schemes.iter().enumerate() {
        let problem = match s {
            SchemeSpec::EmbeddingDb { captures, .. } if !(1..=c.captures).contains(captures) => {
                Some(format!(
                    "captures {captures}: must be in 1..=compare.captures ({})",
                    c.captures
                ))
            }
            SchemeSpec::IomGrp { m, q, .. } => GrpIom::new(*m, *q).err().map(|e| e.to_string()),
            SchemeSpec::IomUrp { m, w, p, .. } => {
                UrpIom::new(*m, *w, *p).err().map(|e| e.to_string())
            }
            SchemeSpec::Ndb { bits, k, r, p, .. } => NdbParams {
                k: *k,
                r: *r,
                p: p.clone(),
            }
            .validate(*bits)
            .err()
            .map(|e| e.to_string()),
            _ => None,
        };
        if let Some(why) = problem {
            return bad(&format!("schemes[{i}]"), why);
        }
    }
    Ok(config)
}

/// One scheme's row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SchemeRow {
    pub label: String,
    pub properties: protection::Properties,
    /// Where the threshold came from.
    pub threshold_from: String,
    pub threshold: f64,
    pub eer: f64,
    pub roc_auc: f64,
    pub fnmr_at_fmr_1pct: f64,
    pub f1: f64,
    pub fmr: f64,
    pub fnmr: f64,
    /// embedding-db only: F1 / FMR / FNMR at the blog's cosine 0.75.
    pub at_075: Option<(f64, f64, f64)>,
    pub rank1: f64,
    pub rank5: f64,
    pub identified: usize,
    pub enrol_ms_per_user: f64,
    /// Median 1:N query time (schemes that batch: one probe identified alone).
    pub query_ms_median: f64,
    /// Schemes that batch per-user work: the batch's time per probe.
    #[serde(default)]
    pub batch_query_ms: Option<f64>,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    pub storage_bytes_per_user: f64,
    /// Encrypted schemes: decrypted scores checked, and how many differed.
    pub scores_checked: Option<(u64, u64)>,
    pub genuine: Vec<f64>,
    pub impostor: Vec<f64>,
    pub unlinkability: Option<Linkage>,
}

/// Unlinkability and renewability of a revocable scheme.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Linkage {
    /// How two stored templates were compared.
    pub linkage_score: String,
    pub d_sys: f64,
    pub mated_mean: f64,
    pub non_mated_mean: f64,
    /// EER of old templates vs queries under the new token (≈ 0.5 = renewed).
    pub renewal_eer: f64,
    pub pairs: usize,
}

/// compare.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyResult {
    pub test: String,
    pub validation: String,
    pub rows: Vec<SchemeRow>,
}

/// Runs the comparison in `config_path`; returns the run folder.
pub fn run(config_path: &Path, text: &str) -> Result<PathBuf> {
    let start = Instant::now();
    let config = parse(text, config_path, true)?;
    let c = &config.compare;
    let dir = super::run::new_run_folder(&config.outputs.dir, &config.name)?;
    println!(
        "touchstone run {} · scheme comparison · {} schemes · {}",
        config_path.display(),
        c.schemes.len(),
        dir.display()
    );
    let data = match (&c.synthetic, &c.path) {
        (Some(synth), _) => {
            let folder = super::run::synthetic_folder(&config.outputs.dir, synth);
            super::run::ensure_synthetic(synth, &folder)?;
            folder
        }
        (None, Some(p)) => p.clone(),
        (None, None) => unreachable!("validated"),
    };
    let extra = c.captures - 1;
    let load = |part| {
        TestSet::load_part(&c.model, &data, c.split_seed, c.seed, None, part, extra)
            .with_context(|| format!("{} on {}", c.model.display(), data.display()))
    };
    let test = load(Part::Test)?;
    let validation = load(Part::Validation)?;
    let (users, probes) = protection::users_and_probes(&test, c.seed);
    let (v_users, v_probes) = protection::users_and_probes(&validation, c.seed);
    let mut rows = Vec::new();
    for (i, spec) in c.schemes.iter().enumerate() {
        let row = scheme_row(
            c,
            spec,
            &dir,
            i,
            (&test, &users, &probes),
            (&validation, &v_users, &v_probes),
        )
        .with_context(|| format!("compare.schemes[{i}]"))?;
        println!(
            "  {:<40} EER {:>6.2}%  rank-1 {:>6.2}%  query {:.3} ms",
            row.label,
            100.0 * row.eer,
            100.0 * row.rank1,
            row.query_ms_median
        );
        rows.push(row);
    }
    let result = StudyResult {
        test: test.description.clone(),
        validation: validation.description.clone(),
        rows,
    };
    super::atomic::write(
        &dir.join("compare.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    let mut man = manifest::Manifest::for_study(&config.name, text, config_path);
    man.seeds = vec![c.seed];
    man.model = Some(manifest::model_inputs(&c.model)?);
    man.dataset = Some(manifest::dataset_inputs(&data)?);
    man.finish(start.elapsed().as_secs_f64(), result.rows.len());
    man.write(&dir)?;
    render(&dir, &config, &result)?;
    println!("wrote {}", dir.join("summary.md").display());
    Ok(dir)
}

type Set<'a> = (&'a TestSet, &'a [protection::User], &'a [protection::Probe]);

fn build(
    spec: &SchemeSpec,
    set: &TestSet,
    seed: u64,
    db_path: PathBuf,
) -> Result<Box<dyn ProtectionScheme>> {
    let protocol_scheme =
        |kind: SchemeKind, engine: ColumnarEngine| -> Result<Box<dyn ProtectionScheme>> {
            let workload = set.workload(8)?;
            let mut sc = SchemeConfig::new(kind);
            sc.engine = engine;
            let matcher = build_matcher(&sc, &workload.model, &workload.quantized)?;
            Ok(Box::new(MatcherScheme::new(matcher, workload)))
        };
    Ok(match spec {
        SchemeSpec::Plain => protocol_scheme(SchemeKind::Plain, ColumnarEngine::Cpu)?,
        SchemeSpec::Quantized => protocol_scheme(SchemeKind::Quantized, ColumnarEngine::Cpu)?,
        SchemeSpec::Blindtouch => protocol_scheme(SchemeKind::BlindTouch, ColumnarEngine::Cpu)?,
        SchemeSpec::Columnar { engine } => protocol_scheme(SchemeKind::Columnar, *engine)?,
        SchemeSpec::EmbeddingDb { features, captures } => {
            Box::new(EmbeddingDbScheme::new(*features, *captures, db_path)?)
        }
        SchemeSpec::IomGrp { features, m, q } => Box::new(IomScheme::new(
            IomKind::Grp(GrpIom::new(*m, *q)?),
            *features,
        )?),
        SchemeSpec::IomUrp { features, m, w, p } => Box::new(IomScheme::new(
            IomKind::Urp(UrpIom::new(*m, *w, *p)?),
            *features,
        )?),
        SchemeSpec::Ndb {
            features,
            bits,
            k,
            r,
            p,
        } => Box::new(NdbScheme::new(
            *bits,
            NdbParams {
                k: *k,
                r: *r,
                p: p.clone(),
            },
            *features,
            seed,
        )?),
    })
}

fn scheme_row(
    c: &CompareConfig,
    spec: &SchemeSpec,
    dir: &Path,
    index: usize,
    (test, users, probes): Set,
    (validation, v_users, v_probes): Set,
) -> Result<SchemeRow> {
    let db = |part: &str| dir.join(format!("embedding-db-{index}-{part}.sqlite"));
    let mut scheme = build(spec, test, c.seed, db("test"))?;
    let eval = protection::evaluate(test, scheme.as_mut(), users, probes, c.identify_probes)?;
    if let Some(tally) = &eval.exactness {
        tally.require_exact(&eval.label)?;
    }
    let (threshold, from) = match eval.own_threshold {
        Some(t) => (t, "the model's τ".to_string()),
        None => {
            // The same scheme on the validation split (1:1 pairs only).
            let mut v = build(spec, validation, c.seed, db("validation"))?;
            let ve = protection::evaluate(validation, v.as_mut(), v_users, v_probes, 1)?;
            (
                metrics::eer_threshold(&ve.genuine, &ve.impostor),
                "validation EER point".to_string(),
            )
        }
    };
    let ver = metrics::verification(&eval.genuine, &eval.impostor, threshold);
    let (fmr, fnmr) = metrics::rates_at(&eval.genuine, &eval.impostor, threshold);
    let at_075 = matches!(spec, SchemeSpec::EmbeddingDb { .. }).then(|| {
        let v = metrics::verification(&eval.genuine, &eval.impostor, 0.75);
        let (fmr, fnmr) = metrics::rates_at(&eval.genuine, &eval.impostor, 0.75);
        (v.f1, fmr, fnmr)
    });
    let mut times: Vec<f64> = eval.query_seconds.iter().map(|s| s * 1e3).collect();
    times.sort_by(f64::total_cmp);
    let unlinkability = match spec {
        SchemeSpec::IomGrp { .. } | SchemeSpec::IomUrp { .. } | SchemeSpec::Ndb { .. } => {
            Some(linkage(spec, test, users, probes, c)?)
        }
        _ => None,
    };
    Ok(SchemeRow {
        label: eval.label.clone(),
        properties: eval.properties.clone(),
        threshold_from: from,
        threshold,
        eer: metrics::eer(&eval.genuine, &eval.impostor),
        roc_auc: metrics::roc_auc(&eval.genuine, &eval.impostor),
        fnmr_at_fmr_1pct: metrics::fnmr_at_fmr(&eval.genuine, &eval.impostor, 0.01),
        f1: ver.f1,
        fmr,
        fnmr,
        at_075,
        rank1: eval.rank1,
        rank5: eval.rank5,
        identified: eval.identified,
        enrol_ms_per_user: 1e3 * eval.enrolled.seconds / eval.enrolled.users.max(1) as f64,
        query_ms_median: times.get(times.len() / 2).copied().unwrap_or(0.0),
        batch_query_ms: eval.batch_seconds_per_probe.map(|s| s * 1e3),
        upload_bytes: eval.upload_bytes,
        download_bytes: eval.download_bytes,
        storage_bytes_per_user: eval.enrolled.storage_bytes_per_user,
        scores_checked: eval
            .exactness
            .as_ref()
            .map(|t| (t.scores_checked, t.scores_differing)),
        genuine: eval.genuine,
        impostor: eval.impostor,
        unlinkability,
    })
}

/// Mated: user u's enrolment capture under token t_u against u's probe capture under a
/// second token t′_u; non-mated: u's against user u+1's probe under t′_{u+1}.
fn linkage(
    spec: &SchemeSpec,
    test: &TestSet,
    users: &[protection::User],
    probes: &[protection::Probe],
    c: &CompareConfig,
) -> Result<Linkage> {
    let n = users.len().min(c.link_users).min(test.images);
    if n < 2 {
        bail!("unlinkability needs at least 2 users");
    }
    let renewed = |u: usize| protection::token_for(c.seed ^ 0x005e_ed0f_7e11, u);
    // (linkage score between two stored templates, renewal score old template vs new query)
    let mut mated = Vec::new();
    let mut non_mated = Vec::new();
    let mut renew_genuine = Vec::new();
    let mut renew_impostor = Vec::new();
    let label;
    match spec {
        SchemeSpec::IomGrp { features, m, q }
        | SchemeSpec::IomUrp {
            features, m, w: q, ..
        } => {
            let kind = match spec {
                SchemeSpec::IomGrp { .. } => IomKind::Grp(GrpIom::new(*m, *q)?),
                SchemeSpec::IomUrp { w, p, .. } => IomKind::Urp(UrpIom::new(*m, *w, *p)?),
                _ => unreachable!(),
            };
            let s = IomScheme::new(kind, *features)?;
            label = "collision rate of the two stored codes".to_string();
            let old: Vec<_> = (0..n)
                .map(|u| s.code(users[u].token, s.features_of(&users[u].captures[0])))
                .collect::<train::Result<_>>()?;
            let new: Vec<_> = (0..n)
                .map(|u| s.code(renewed(u), s.features_of(&probes[u].captures[0])))
                .collect::<train::Result<_>>()?;
            for u in 0..n {
                let v = (u + 1) % n;
                // For IoM the stored new template and the new query are the same code.
                mated.push(iom::similarity(&old[u], &new[u])?);
                non_mated.push(iom::similarity(&old[u], &new[v])?);
            }
            renew_genuine.clone_from(&mated);
            renew_impostor.clone_from(&non_mated);
        }
        SchemeSpec::Ndb {
            features,
            bits,
            k,
            r,
            p,
        } => {
            let params = NdbParams {
                k: *k,
                r: *r,
                p: p.clone(),
            };
            let s = NdbScheme::new(*bits, params.clone(), *features, c.seed)?;
            let estimator = protect::ndb::Estimator::new(*bits, *k, p)?;
            label = "Hamming distance of the attacker's majority strings (negated)".to_string();
            let old: Vec<_> = (0..n)
                .map(|u| {
                    s.database(
                        users[u].token,
                        s.features_of(&users[u].captures[0]),
                        c.seed ^ u as u64,
                    )
                })
                .collect::<train::Result<_>>()?;
            let new: Vec<_> = (0..n)
                .map(|u| {
                    s.database(
                        renewed(u),
                        s.features_of(&probes[u].captures[0]),
                        c.seed ^ ((u as u64 + 1) << 32),
                    )
                })
                .collect::<train::Result<_>>()?;
            let guess =
                |db| protection::ndb_majority_string(db, *bits, params.differing_fraction());
            let old_g: Vec<_> = old.iter().map(guess).collect();
            let new_g: Vec<_> = new.iter().map(guess).collect();
            let queries: Vec<_> = (0..n)
                .map(|u| s.string(renewed(u), s.features_of(&probes[u].captures[0])))
                .collect::<train::Result<_>>()?;
            let score = |db: &protect::ndb::Ndb, y| -> Result<f64> {
                Ok(-estimator.estimate(db.matches(y)?, db.len())?.distance)
            };
            for u in 0..n {
                let v = (u + 1) % n;
                let h = |a: &protect::ndb::BitVec, b| -(a.hamming(b).unwrap_or(*bits) as f64);
                mated.push(h(&old_g[u], &new_g[u]));
                non_mated.push(h(&old_g[u], &new_g[v]));
                renew_genuine.push(score(&old[u], &queries[u])?);
                renew_impostor.push(score(&old[u], &queries[v])?);
            }
        }
        _ => bail!("only revocable schemes have linkage"),
    }
    // Gaussian KDE (Silverman's bandwidth) on a 200-cell grid: with a few hundred pairs a
    // fine histogram's sampling noise alone reads as linkability.
    let options = protect::metrics::UnlinkabilityOptions {
        bins: 200,
        density: protect::metrics::Density::Kde { bandwidth: None },
        omega: 1.0,
    };
    let u = protect::metrics::unlinkability(&mated, &non_mated, &options)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(Linkage {
        linkage_score: label,
        d_sys: u.sys,
        mated_mean: mean(&mated),
        non_mated_mean: mean(&non_mated),
        renewal_eer: metrics::eer(&renew_genuine, &renew_impostor),
        pairs: n,
    })
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * x)
    }
}

/// summary.md and the figures.
pub fn render(dir: &Path, config: &StudyConfig, r: &StudyResult) -> Result<()> {
    let figures = draw(dir, r)?;
    let mut s = String::new();
    writeln!(s, "# {}\n", config.name)?;
    if !config.description.is_empty() {
        writeln!(s, "{}\n", config.description.trim())?;
    }
    writeln!(
        s,
        "Every scheme enrolled the same model's features of {} and answered the same \
         verification pairs (1:1) and 1:N queries. Thresholds: the model's τ for the \
         encrypted family, the validation split's equal-error point otherwise ({}). \
         The data is synthetic.\n",
        r.test, r.validation
    )?;
    let mut t = crate::format::Table::new(&[
        "scheme",
        "EER",
        "FNMR@FMR 1%",
        "ROC AUC",
        "F1 (threshold)",
        "FMR / FNMR",
        "rank-1",
        "enrol / user",
        "query (1:N)",
        "up / down",
        "stored / user",
        "exact",
    ]);
    for row in &r.rows {
        t.row(vec![
            row.label.clone(),
            pct(row.eer),
            pct(row.fnmr_at_fmr_1pct),
            format!("{:.4}", row.roc_auc),
            format!("{} ({})", pct(row.f1), row.threshold_from),
            format!("{} / {}", pct(row.fmr), pct(row.fnmr)),
            format!("{} of {}", pct(row.rank1), row.identified),
            format!("{:.3} ms", row.enrol_ms_per_user),
            format!("{:.3} ms", row.query_ms_median),
            format!(
                "{} / {}",
                crate::format::bytes(row.upload_bytes),
                crate::format::bytes(row.download_bytes)
            ),
            crate::format::bytes(row.storage_bytes_per_user.round() as usize),
            row.scores_checked.map_or("-".into(), |(n, d)| {
                if d == 0 {
                    format!("yes ({n} scores)")
                } else {
                    format!("NO ({d} of {n} differ)")
                }
            }),
        ]);
    }
    writeln!(s, "## Accuracy and cost\n\n{}\n", t.render())?;
    writeln!(
        s,
        "`query (1:N)`: the median over the identification probes; for schemes whose \
         hash functions are per user (IoM, NDB) it is one probe identified alone, which draws \
         every user's functions — in a batch they are drawn once per user:\n"
    )?;
    for row in &r.rows {
        if let Some(b) = row.batch_query_ms {
            writeln!(
                s,
                "- {}: {:.3} ms per probe in a batch of {}",
                row.label, b, row.identified
            )?;
        }
    }
    writeln!(s)?;
    for row in &r.rows {
        if let Some((f1, fmr, fnmr)) = row.at_075 {
            writeln!(
                s,
                "- {} at the Deep Authenticator blog's cosine 0.75: F1 {}, FMR {}, FNMR {}.",
                row.label,
                pct(f1),
                pct(fmr),
                pct(fnmr)
            )?;
        }
    }
    if let Some(base) = r.rows.iter().find(|r| r.label.starts_with("embedding-db")) {
        writeln!(
            s,
            "\nEER relative to the unprotected baseline ({}, EER {}):\n",
            base.label,
            pct(base.eer)
        )?;
        for row in &r.rows {
            writeln!(
                s,
                "- {}: {} ({:+.2} points)",
                row.label,
                pct(row.eer),
                100.0 * (row.eer - base.eer)
            )?;
        }
    }
    let mut t = crate::format::Table::new(&[
        "scheme",
        "server stores",
        "server learns",
        "revocable",
        "scores",
    ]);
    for row in &r.rows {
        let p = &row.properties;
        t.row(vec![
            row.label.clone(),
            p.stores.clone(),
            p.server_learns.clone(),
            if p.revocable {
                "yes".into()
            } else {
                "no".into()
            },
            p.exact.clone(),
        ]);
    }
    writeln!(
        s,
        "\n## Properties (from each scheme's own metadata)\n\n{}\n",
        t.render()
    )?;
    let linked: Vec<&SchemeRow> = r
        .rows
        .iter()
        .filter(|r| r.unlinkability.is_some())
        .collect();
    if !linked.is_empty() {
        let mut t = crate::format::Table::new(&[
            "scheme",
            "D↔sys (0 = unlinkable)",
            "mated / non-mated mean",
            "renewal EER (50% = renewed)",
            "pairs",
            "linkage score",
        ]);
        for row in linked {
            let l = row.unlinkability.as_ref().expect("filtered");
            t.row(vec![
                row.label.clone(),
                format!("{:.3}", l.d_sys),
                format!("{:.3} / {:.3}", l.mated_mean, l.non_mated_mean),
                pct(l.renewal_eer),
                l.pairs.to_string(),
                l.linkage_score.clone(),
            ]);
        }
        writeln!(
            s,
            "## Unlinkability and renewability\n\nGomez-Barrero et al., IEEE TIFS 2018 (Gaussian KDE \
             densities, ω = 1): mated = one finger's templates under two tokens (enrolment and a later capture), non-mated \
             = two fingers under two tokens; D↔sys integrates the local linkability over the \
             mated score density. Renewability: the old template against the finger's query \
             under the new token, as genuine, vs other fingers.\n\n{}\n",
            t.render()
        )?;
    }
    super::study::write_summary(dir, s, &figures)
}

use super::figures::err;

/// The DET curves of every scheme on one chart, and the cost per query as bars.
fn draw(dir: &Path, r: &StudyResult) -> Result<Vec<String>> {
    train::curve::register_font();
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures)?;
    let colors = [
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(230, 140, 0),
        RGBColor(120, 80, 40),
        RGBColor(100, 100, 100),
    ];
    // DET on log-log axes: FNMR vs FMR.
    let path = figures.join("det_all.png");
    {
        let root = BitMapBackend::new(&path, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "DET: every scheme on the same test pairs",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((1e-3f64..1.0).log_scale(), (1e-3f64..1.0).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("FMR")
            .y_desc("FNMR")
            .draw()
            .map_err(err)?;
        for (i, row) in r.rows.iter().enumerate() {
            let c = colors[i % colors.len()];
            let points: Vec<(f64, f64)> = super::figures::det(&row.genuine, &row.impostor)
                .into_iter()
                .map(|(x, y)| (x.max(1e-3), y.max(1e-3)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(err)?
                .label(row.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    let cost = figures.join("cost_per_query.png");
    {
        let root =
            BitMapBackend::new(&cost, (900, 60 + 40 * r.rows.len() as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let top = r
            .rows
            .iter()
            .map(|x| x.query_ms_median)
            .fold(0.001, f64::max)
            * 1.15;
        let n = r.rows.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "median 1:N query time (ms) over the test gallery",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(260)
            .build_cartesian_2d((0.001f64..top).log_scale(), 0.0..n as f64)
            .map_err(err)?;
        let labels: Vec<String> = r.rows.iter().map(|x| x.label.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(2 * n + 1)
            .y_label_formatter(&|y| {
                let i = (y - 0.5).round();
                if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(r.rows.iter().enumerate().map(|(i, row)| {
                Rectangle::new(
                    [
                        (0.001, i as f64 + 0.2),
                        (row.query_ms_median.max(0.001), i as f64 + 0.8),
                    ],
                    colors[i % colors.len()].filled(),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(vec![
        "figures/det_all.png".into(),
        "figures/cost_per_query.png".into(),
    ])
}
