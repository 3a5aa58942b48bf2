//! Scrambled Sobol points: Joe–Kuo direction numbers, a seeded linear matrix scramble and a
//! digital shift (Owen 1998 / Matoušek), so a seed gives a reproducible low-discrepancy design.

use super::rng::Rng;

/// Joe & Kuo (2008) `new-joe-kuo-6.21201`, dimensions 2..=32: `(s, a, m_1..m_s)`. Dimension 1
/// is the van der Corput sequence and needs none. Written out here, not loaded, so the
/// sequence never changes under us.
const JOE_KUO: [(u32, u32, &[u32]); 31] = [
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
    (7, 7, &[1, 1, 3, 13, 7, 35, 63]),
    (7, 8, &[1, 3, 5, 9, 1, 25, 53]),
    (7, 14, &[1, 3, 1, 13, 9, 35, 107]),
    (7, 19, &[1, 3, 1, 5, 27, 61, 31]),
    (7, 21, &[1, 1, 5, 11, 19, 41, 61]),
    (7, 28, &[1, 3, 5, 3, 3, 13, 69]),
    (7, 31, &[1, 1, 7, 13, 1, 19, 1]),
    (7, 32, &[1, 3, 7, 5, 13, 19, 59]),
    (7, 37, &[1, 1, 3, 9, 25, 29, 41]),
    (7, 41, &[1, 3, 5, 13, 23, 1, 55]),
    (7, 42, &[1, 3, 7, 3, 13, 59, 17]),
];

/// The largest number of dimensions we have direction numbers for.
pub(crate) const MAX_DIMS: usize = JOE_KUO.len() + 1;

const BITS: usize = 32;

/// A scrambled Sobol sequence in `dims` dimensions; [`Sobol::point`] gives any index directly.
#[derive(Debug, Clone)]
pub(crate) struct Sobol {
    /// Scrambled direction numbers, `[dim][bit]`, most significant digit in bit 31.
    directions: Vec<[u32; BITS]>,
    shifts: Vec<u32>,
}

impl Sobol {
    /// `None` when `dims` exceeds [`MAX_DIMS`].
    pub(crate) fn new(dims: usize, seed: u64) -> Option<Sobol> {
        if dims > MAX_DIMS {
            return None;
        }
        let mut rng = Rng::stream(&[seed, 0x5EED_50B0, dims as u64]);
        let mut directions = Vec::with_capacity(dims);
        let mut shifts = Vec::with_capacity(dims);
        for dim in 0..dims {
            let raw = raw_directions(dim);
            // Linear matrix scramble: a random lower-triangular binary matrix with unit diagonal
            // applied to every direction number's digit vector keeps the (t,s)-net property.
            let rows: Vec<u32> = (0..BITS)
                .map(|i| {
                    let above = if i == 0 { 0 } else { u32::MAX << (BITS - i) };
                    (rng.next_u64() as u32 & above) | (1u32 << (BITS - 1 - i))
                })
                .collect();
            let mut scrambled = [0u32; BITS];
            for (k, v) in raw.iter().enumerate() {
                let mut out = 0u32;
                for (i, row) in rows.iter().enumerate() {
                    out |= ((row & v).count_ones() & 1) << (BITS - 1 - i);
                }
                scrambled[k] = out;
            }
            directions.push(scrambled);
            shifts.push(rng.next_u64() as u32);
        }
        Some(Sobol { directions, shifts })
    }

    /// Point number `index` (indices wrap after 2³²), every coordinate in the open interval (0, 1).
    pub(crate) fn point(&self, index: u64) -> Vec<f64> {
        let index = index as u32;
        self.directions
            .iter()
            .zip(&self.shifts)
            .map(|(dirs, shift)| {
                let mut x = *shift;
                let mut bits = index;
                let mut k = 0;
                while bits != 0 {
                    if bits & 1 == 1 {
                        x ^= dirs[k];
                    }
                    bits >>= 1;
                    k += 1;
                }
                (x as f64 + 0.5) / 4_294_967_296.0
            })
            .collect()
    }
}

/// Unscrambled direction numbers of dimension `dim` (0-based).
fn raw_directions(dim: usize) -> [u32; BITS] {
    let mut v = [0u32; BITS];
    if dim == 0 {
        for (k, vk) in v.iter_mut().enumerate() {
            *vk = 1u32 << (BITS - 1 - k);
        }
        return v;
    }
    let (s, a, m) = JOE_KUO[dim - 1];
    let s = s as usize;
    for k in 0..s.min(BITS) {
        v[k] = m[k] << (BITS - 1 - k);
    }
    for k in s..BITS {
        let mut x = v[k - s] ^ (v[k - s] >> s);
        for i in 1..s {
            if (a >> (s - 1 - i)) & 1 == 1 {
                x ^= v[k - i];
            }
        }
        v[k] = x;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unscrambled, the first points are the textbook ones (checks the table and recurrence).
    #[test]
    fn raw_sequence_matches_the_textbook() {
        let point = |i: u32, dim: usize| {
            let v = raw_directions(dim);
            let mut x = 0u32;
            for (k, vk) in v.iter().enumerate() {
                if (i >> k) & 1 == 1 {
                    x ^= vk;
                }
            }
            x as f64 / 4_294_967_296.0
        };
        assert_eq!(point(1, 0), 0.5);
        assert_eq!(point(1, 1), 0.5);
        assert_eq!((point(2, 0), point(2, 1)), (0.25, 0.75));
        assert_eq!((point(3, 0), point(3, 1)), (0.75, 0.25));
        assert_eq!((point(2, 2), point(3, 2)), (0.75, 0.25));
    }

    /// Each 1-D projection of the first 2^k points hits every interval [j/2^k, (j+1)/2^k) once.
    #[test]
    fn scrambled_points_stratify_every_coordinate() {
        let sobol = Sobol::new(MAX_DIMS, 42).unwrap();
        let n = 64;
        let points: Vec<Vec<f64>> = (0..n).map(|i| sobol.point(i)).collect();
        for d in 0..MAX_DIMS {
            let mut seen = vec![false; n as usize];
            for p in &points {
                assert!(p[d] > 0.0 && p[d] < 1.0);
                seen[(p[d] * n as f64) as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "dimension {d} not stratified");
        }
    }

    #[test]
    fn two_dimensional_nets_hold_after_scrambling() {
        // The first 16 points of dims 0 and 1 form a (0,4,2)-net: one point per 4x4 cell.
        let sobol = Sobol::new(2, 7).unwrap();
        let mut cells = [[0; 4]; 4];
        for i in 0..16 {
            let p = sobol.point(i);
            cells[(p[0] * 4.0) as usize][(p[1] * 4.0) as usize] += 1;
        }
        assert!(cells.iter().flatten().all(|&c| c == 1), "{cells:?}");
    }

    #[test]
    fn seeds_change_the_points_but_not_reproducibility() {
        let a = Sobol::new(3, 1).unwrap();
        let b = Sobol::new(3, 1).unwrap();
        let c = Sobol::new(3, 2).unwrap();
        assert_eq!(a.point(5), b.point(5));
        assert_ne!(a.point(5), c.point(5));
        assert!(Sobol::new(MAX_DIMS + 1, 0).is_none());
    }
}
