//! Verification metrics from genuine and impostor scores (higher score = more similar),
//! in ISO/IEC 19795-1 vocabulary: FMR (impostors accepted), FNMR (genuines rejected).

/// FMR and FNMR when accepting scores ≥ `threshold`.
pub fn rates_at(genuine: &[f64], impostor: &[f64], threshold: f64) -> (f64, f64) {
    let fmr =
        impostor.iter().filter(|&&s| s >= threshold).count() as f64 / impostor.len().max(1) as f64;
    let fnmr =
        genuine.iter().filter(|&&s| s < threshold).count() as f64 / genuine.len().max(1) as f64;
    (fmr, fnmr)
}

fn candidate_thresholds(genuine: &[f64], impostor: &[f64]) -> Vec<f64> {
    let mut t: Vec<f64> = genuine
        .iter()
        .chain(impostor)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    t.sort_by(f64::total_cmp);
    t.dedup();
    t.push(f64::INFINITY);
    t
}

/// The threshold at the equal-error point (where FMR and FNMR are closest; the lowest
/// such threshold on ties) — how a scheme without its own threshold gets one from
/// validation scores. NaN without scores.
pub fn eer_threshold(genuine: &[f64], impostor: &[f64]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    candidate_thresholds(genuine, impostor)
        .into_iter()
        .map(|t| (t, rates_at(genuine, impostor, t)))
        .min_by(|a, b| (a.1 .0 - a.1 .1).abs().total_cmp(&(b.1 .0 - b.1 .1).abs()))
        .map_or(f64::NAN, |(t, _)| t)
}

/// Equal error rate: the error where FMR and FNMR cross (the mean of the two at the
/// threshold where they are closest, the usual discrete estimate).
pub fn eer(genuine: &[f64], impostor: &[f64]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    candidate_thresholds(genuine, impostor)
        .into_iter()
        .map(|t| rates_at(genuine, impostor, t))
        .min_by(|a, b| (a.0 - a.1).abs().total_cmp(&(b.0 - b.1).abs()))
        .map(|(fmr, fnmr)| (fmr + fnmr) / 2.0)
        .unwrap_or(f64::NAN)
}

/// Area under the ROC curve: the probability that a random genuine score exceeds a
/// random impostor score (ties count half).
pub fn roc_auc(genuine: &[f64], impostor: &[f64]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    let mut imp = impostor.to_vec();
    imp.sort_by(f64::total_cmp);
    let mut total = 0.0;
    for &g in genuine {
        let below = imp.partition_point(|&s| s < g);
        let equal = imp[below..].partition_point(|&s| s <= g);
        total += below as f64 + 0.5 * equal as f64;
    }
    total / (genuine.len() as f64 * imp.len() as f64)
}

/// FNMR at the smallest threshold whose FMR does not exceed `target_fmr`.
pub fn fnmr_at_fmr(genuine: &[f64], impostor: &[f64], target_fmr: f64) -> f64 {
    candidate_thresholds(genuine, impostor)
        .into_iter()
        .map(|t| rates_at(genuine, impostor, t))
        .find(|(fmr, _)| *fmr <= target_fmr)
        .map(|(_, fnmr)| fnmr)
        .unwrap_or(1.0)
}

/// Verification metrics at one threshold plus threshold-free ones.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verification {
    /// (TP + TN) / all pairs.
    pub accuracy: f64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN) = 1 − FNMR at the threshold.
    pub recall: f64,
    /// 2·TP / (2·TP + FP + FN).
    pub f1: f64,
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Equal error rate.
    pub eer: f64,
    /// FNMR at FMR ≤ 1%.
    pub fnmr_at_fmr_1pct: f64,
    /// FNMR at FMR ≤ 0.1%.
    pub fnmr_at_fmr_01pct: f64,
}

/// Every verification metric of `genuine` and `impostor` scores, accepting scores
/// ≥ `threshold`.
pub fn verification(genuine: &[f64], impostor: &[f64], threshold: f64) -> Verification {
    let tp = genuine.iter().filter(|&&s| s >= threshold).count() as f64;
    let fneg = genuine.len() as f64 - tp;
    let fp = impostor.iter().filter(|&&s| s >= threshold).count() as f64;
    let tn = impostor.len() as f64 - fp;
    Verification {
        accuracy: (tp + tn) / (genuine.len() + impostor.len()).max(1) as f64,
        precision: tp / (tp + fp).max(1.0),
        recall: tp / (tp + fneg).max(1.0),
        f1: 2.0 * tp / (2.0 * tp + fp + fneg).max(1.0),
        roc_auc: roc_auc(genuine, impostor),
        eer: eer(genuine, impostor),
        fnmr_at_fmr_1pct: fnmr_at_fmr(genuine, impostor, 0.01),
        fnmr_at_fmr_01pct: fnmr_at_fmr(genuine, impostor, 0.001),
    }
}

/// The 1-based rank of the mate in one probe's scores, pessimistic on ties: every other
/// candidate scoring at least as high as the mate ranks before it (so a model that gives
/// every candidate the same score has rank-1 of 0, not 100%). A NaN score ranks last.
pub fn mate_rank(scores: &[f64], mate: usize) -> usize {
    let m = scores[mate];
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != mate && (m.is_nan() || s >= m))
        .count()
}

/// Rank-1 and rank-5 identification rates of mated probes: the share whose mate's
/// pessimistic rank is ≤ 1 / ≤ 5. `rows[i]` holds probe i's scores; `mates[i]` its mate.
pub fn rank_rates(rows: &[&[f64]], mates: &[usize]) -> (f64, f64) {
    let (mut r1, mut r5) = (0usize, 0usize);
    for (row, &mate) in rows.iter().zip(mates) {
        let rank = mate_rank(row, mate);
        r1 += usize::from(rank <= 1);
        r5 += usize::from(rank <= 5);
    }
    let n = mates.len().max(1) as f64;
    (r1 as f64 / n, r5 as f64 / n)
}

/// Decidability index d′ = |μg − μi| / √((σg² + σi²)/2).
pub fn d_prime(genuine: &[f64], impostor: &[f64]) -> f64 {
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64;
        (m, var)
    };
    let ((mg, vg), (mi, vi)) = (stats(genuine), stats(impostor));
    (mg - mi).abs() / ((vg + vi) / 2.0).sqrt().max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eer_threshold_separates_at_the_crossing() {
        // Genuine 3..6, impostor 1..4: FMR = FNMR = 1/4 at threshold 4.
        let g = [3.0, 4.0, 5.0, 6.0];
        let i = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(eer_threshold(&g, &i), 4.0);
        assert_eq!(rates_at(&g, &i, 4.0), (0.25, 0.25));
        assert!(eer_threshold(&[], &i).is_nan());
    }

    #[test]
    fn separable_scores_have_zero_eer_and_unit_auc() {
        let g = [0.9, 0.8, 0.95];
        let i = [0.1, 0.2, 0.3, 0.4];
        assert_eq!(eer(&g, &i), 0.0);
        assert_eq!(roc_auc(&g, &i), 1.0);
        assert_eq!(fnmr_at_fmr(&g, &i, 0.01), 0.0);
        assert!(d_prime(&g, &i) > 5.0);
    }

    #[test]
    fn ranks_are_pessimistic_on_ties() {
        // The mate (index 1) ties with index 3: rank 2, not 1.
        assert_eq!(mate_rank(&[0.1, 0.5, 0.2, 0.5], 1), 2);
        assert_eq!(mate_rank(&[0.1, 0.6, 0.2, 0.5], 1), 1);
        // All equal: the mate ranks last.
        assert_eq!(mate_rank(&[1.0; 6], 0), 6);
        assert_eq!(mate_rank(&[0.0, f64::NAN, 1.0], 1), 3);
        let rows: Vec<&[f64]> = vec![&[0.9, 0.1], &[0.5, 0.5], &[0.2, 0.3]];
        assert_eq!(rank_rates(&rows, &[0, 1, 1]), (2.0 / 3.0, 1.0));
        let v = verification(&[0.9, 0.4], &[0.5, 0.1], 0.5);
        assert_eq!((v.precision, v.recall, v.accuracy), (0.5, 0.5, 0.5));
    }

    #[test]
    fn overlapping_scores() {
        // Identical distributions: EER 0.5, AUC 0.5.
        let s = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert!((eer(&s, &s) - 0.5).abs() < 0.11);
        assert!((roc_auc(&s, &s) - 0.5).abs() < 1e-12);
        // One genuine below every impostor: FNMR at FMR 0 is 1/4.
        let g = [0.0, 0.9, 0.95, 0.99];
        let i = [0.5, 0.6];
        assert_eq!(fnmr_at_fmr(&g, &i, 0.0), 0.25);
        assert_eq!(rates_at(&g, &i, 0.55), (0.5, 0.25));
        assert!((roc_auc(&g, &i) - 0.75).abs() < 1e-12);
    }
}
