//! Where each user's values sit in the N SIMD slots of a ciphertext.
//!
//! fhe.rs arranges the N slots as a 2 × N/2 matrix; column rotations move slots within
//! each row. Both layouts below keep every user inside one row so rotations never mix
//! users across rows.

use crate::error::{ProtocolError, Result};

fn check_template(template: &[i64], features: usize, index: usize) -> Result<()> {
    if template.len() != features {
        return Err(ProtocolError::Layout(format!(
            "template {index} has {} values, the layout expects {features}",
            template.len()
        )));
    }
    Ok(())
}

/// Blind-Touch's layout: user u of a ciphertext occupies slots d·u … d·u + d − 1, so one
/// ciphertext holds N/d users. After evaluation the score of user u sits in slot d·u; the
/// main server then packs up to d evaluated ciphertexts into one by rotating the k-th
/// right by k mod d, so user u of ciphertext k is read from slot d·u + (k mod d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlindTouchLayout {
    slots: usize,
    features: usize,
}

impl BlindTouchLayout {
    /// A layout for `slots` = N slots and `features` = d values per user.
    pub fn new(slots: usize, features: usize) -> Result<Self> {
        if !features.is_power_of_two() || features < 2 || features > slots / 2 {
            return Err(ProtocolError::Layout(format!(
                "blindtouch needs a power-of-two feature count in 2..={} (rotate-and-add \
                 sums d slots in log2 d steps), got {features}",
                slots / 2
            )));
        }
        Ok(Self { slots, features })
    }

    /// d, the slots per user.
    pub fn features(&self) -> usize {
        self.features
    }

    /// N / d users per ciphertext (512 for N = 8192, d = 16).
    pub fn users_per_ciphertext(&self) -> usize {
        self.slots / self.features
    }

    /// How many evaluated ciphertexts one result ciphertext can hold (d).
    pub fn compression_capacity(&self) -> usize {
        self.features
    }

    /// Number of gallery ciphertexts for `users` users.
    pub fn ciphertexts_for(&self, users: usize) -> usize {
        users.div_ceil(self.users_per_ciphertext())
    }

    /// The slot vector of one gallery ciphertext; unused slots are zero.
    pub fn pack_gallery(&self, templates: &[Vec<i64>], first_index: usize) -> Result<Vec<i64>> {
        if templates.len() > self.users_per_ciphertext() {
            return Err(ProtocolError::Layout(format!(
                "{} users do not fit one blindtouch ciphertext of {} users",
                templates.len(),
                self.users_per_ciphertext()
            )));
        }
        let mut slots = vec![0i64; self.slots];
        for (u, t) in templates.iter().enumerate() {
            check_template(t, self.features, first_index + u)?;
            slots[u * self.features..(u + 1) * self.features].copy_from_slice(t);
        }
        Ok(slots)
    }

    /// A d-vector repeated for every user (the query, or the weights).
    pub fn repeat(&self, values: &[i64]) -> Result<Vec<i64>> {
        check_template(values, self.features, 0)?;
        Ok(values.iter().copied().cycle().take(self.slots).collect())
    }

    /// 1 in slot d·u for every user, 0 elsewhere: keeps only the summed scores.
    pub fn mask(&self) -> Vec<i64> {
        (0..self.slots)
            .map(|i| i64::from(i.is_multiple_of(self.features)))
            .collect()
    }

    /// Left rotations whose sum puts Σⱼ of a user's d slots into its first slot.
    pub fn sum_rotations(&self) -> Vec<usize> {
        (0..self.features.trailing_zeros())
            .map(|i| 1 << i)
            .collect()
    }

    /// The left rotation equal to rotating right by `offset` within a row.
    pub fn right_rotation(&self, offset: usize) -> usize {
        self.slots / 2 - offset
    }

    /// Every column rotation the evaluation keys must support.
    pub fn rotations_needed(&self) -> Vec<usize> {
        let mut r = self.sum_rotations();
        r.extend((1..self.compression_capacity()).map(|c| self.right_rotation(c)));
        r
    }

    /// Where ciphertext `k` goes: (result ciphertext, offset within it).
    pub fn placement(&self, k: usize) -> (usize, usize) {
        (k / self.features, k % self.features)
    }

    /// Reads every user's score out of decoded result slot vectors, for `users` users.
    pub fn unpack_scores(&self, results: &[(usize, Vec<i64>)], users: usize) -> Result<Vec<i64>> {
        collect_scores(self.unpack_partial(results, users))
    }

    /// Like [`Self::unpack_scores`], with `None` for users no result carries.
    pub fn unpack_partial(&self, results: &[(usize, Vec<i64>)], users: usize) -> Vec<Option<i64>> {
        let upc = self.users_per_ciphertext();
        let mut scores = vec![None; users];
        for (group, slots) in results {
            for offset in 0..self.features {
                let k = group * self.features + offset;
                for u in 0..upc {
                    let user = k * upc + u;
                    if user < users {
                        scores[user] = slots.get(u * self.features + offset).copied();
                    }
                }
            }
        }
        scores
    }
}

/// Feature-major layout: one user per slot, N users per group; ciphertext (g, j) holds
/// feature j of every user of group g, and the query is d constant ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnarLayout {
    slots: usize,
    features: usize,
}

impl ColumnarLayout {
    /// A layout for N slots and d features.
    pub fn new(slots: usize, features: usize) -> Result<Self> {
        if features == 0 {
            return Err(ProtocolError::Layout(
                "columnar needs at least one feature".into(),
            ));
        }
        Ok(Self { slots, features })
    }

    /// d, ciphertexts per group.
    pub fn features(&self) -> usize {
        self.features
    }

    /// N users per group.
    pub fn users_per_group(&self) -> usize {
        self.slots
    }

    /// Number of groups for `users` users.
    pub fn groups_for(&self, users: usize) -> usize {
        users.div_ceil(self.slots)
    }

    /// The d slot vectors of one group (feature-major); unused slots are zero.
    pub fn pack_group(&self, templates: &[Vec<i64>], first_index: usize) -> Result<Vec<Vec<i64>>> {
        if templates.len() > self.slots {
            return Err(ProtocolError::Layout(format!(
                "{} users do not fit one columnar group of {} users",
                templates.len(),
                self.slots
            )));
        }
        let mut columns = vec![vec![0i64; self.slots]; self.features];
        for (u, t) in templates.iter().enumerate() {
            check_template(t, self.features, first_index + u)?;
            for (j, &v) in t.iter().enumerate() {
                columns[j][u] = v;
            }
        }
        Ok(columns)
    }

    /// Reads every user's score out of decoded group slot vectors.
    pub fn unpack_scores(&self, results: &[(usize, Vec<i64>)], users: usize) -> Result<Vec<i64>> {
        collect_scores(self.unpack_partial(results, users))
    }

    /// Like [`Self::unpack_scores`], with `None` for users no result carries.
    pub fn unpack_partial(&self, results: &[(usize, Vec<i64>)], users: usize) -> Vec<Option<i64>> {
        let mut scores = vec![None; users];
        for (group, slots) in results {
            for (i, &s) in slots.iter().enumerate() {
                let user = group * self.slots + i;
                if user < users {
                    scores[user] = Some(s);
                }
            }
        }
        scores
    }
}

fn collect_scores(scores: Vec<Option<i64>>) -> Result<Vec<i64>> {
    scores
        .into_iter()
        .enumerate()
        .map(|(user, s)| {
            s.ok_or_else(|| {
                ProtocolError::Layout(format!("no result carries the score of user {user}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blindtouch_geometry() {
        let l = BlindTouchLayout::new(8192, 16).unwrap();
        assert_eq!(l.users_per_ciphertext(), 512);
        assert_eq!(l.ciphertexts_for(5000), 10);
        assert_eq!(l.ciphertexts_for(512), 1);
        assert_eq!(l.ciphertexts_for(513), 2);
        assert_eq!(l.sum_rotations(), vec![1, 2, 4, 8]);
        assert_eq!(l.right_rotation(3), 4093);
        assert_eq!(l.rotations_needed().len(), 4 + 15);
        assert_eq!(l.placement(17), (1, 1));
        // Users never straddle the two rows.
        assert_eq!((l.slots / 2) % l.features, 0);
        let mask = l.mask();
        assert_eq!(mask.iter().sum::<i64>(), 512);
        assert_eq!(
            &mask[..17],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn blindtouch_pack_and_unpack_follow_the_slot_map() {
        let l = BlindTouchLayout::new(64, 4).unwrap(); // 16 users per ciphertext
        let templates: Vec<Vec<i64>> = (0..3).map(|u| vec![u, u + 1, u + 2, u + 3]).collect();
        let slots = l.pack_gallery(&templates, 0).unwrap();
        assert_eq!(&slots[4..8], &[1, 2, 3, 4]);
        assert!(slots[12..].iter().all(|&v| v == 0));
        // Simulated result: score of ciphertext k, user u placed at slot 4u + k%4.
        let users = 16 * 5 + 3; // 6 ciphertexts → 2 result groups
        let mut results = vec![(0usize, vec![0i64; 64]), (1usize, vec![0i64; 64])];
        for user in 0..users {
            let (k, u) = (user / 16, user % 16);
            let (group, offset) = l.placement(k);
            results[group].1[u * 4 + offset] = 1000 + user as i64;
        }
        let scores = l.unpack_scores(&results, users).unwrap();
        assert!(scores
            .iter()
            .enumerate()
            .all(|(i, &s)| s == 1000 + i as i64));
        assert!(
            l.unpack_scores(&results[..1], users).is_err(),
            "missing group"
        );
    }

    #[test]
    fn overfull_and_malformed_layouts_are_refused() {
        let l = BlindTouchLayout::new(8192, 16).unwrap();
        let too_many = vec![vec![0i64; 16]; 513];
        assert!(l
            .pack_gallery(&too_many, 0)
            .unwrap_err()
            .to_string()
            .contains("do not fit"));
        let short = vec![vec![0i64; 15]];
        assert!(l
            .pack_gallery(&short, 7)
            .unwrap_err()
            .to_string()
            .contains("template 7"));
        assert!(BlindTouchLayout::new(8192, 12).is_err());
        assert!(BlindTouchLayout::new(8, 8).is_err());

        let c = ColumnarLayout::new(8192, 16).unwrap();
        let too_many = vec![vec![0i64; 16]; 8193];
        assert!(c
            .pack_group(&too_many, 0)
            .unwrap_err()
            .to_string()
            .contains("do not fit"));
        assert!(ColumnarLayout::new(8192, 0).is_err());
    }

    #[test]
    fn columnar_pack_is_feature_major() {
        let c = ColumnarLayout::new(16, 3).unwrap();
        let templates = vec![vec![1, 2, 3], vec![4, 5, 6]];
        let cols = c.pack_group(&templates, 0).unwrap();
        assert_eq!(cols.len(), 3);
        assert_eq!(&cols[1][..3], &[2, 5, 0]);
        let results = vec![
            (0usize, (0..16).collect::<Vec<i64>>()),
            (1, (16..32).collect()),
        ];
        assert_eq!(
            c.unpack_scores(&results, 20).unwrap(),
            (0..20).collect::<Vec<i64>>()
        );
    }
}
