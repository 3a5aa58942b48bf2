//! Our own small pseudo-random generator and normal-distribution functions, so that a seed
//! gives the same trials in every tug version (a dependency's stream may change on upgrade).

/// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: [u64; 4],
}

/// One splitmix64 step: the recommended way to expand a seed into xoshiro's state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for one purpose: the words (seed, trial index, a purpose tag, ...) are mixed
    /// so that every combination gets an independent-looking stream.
    pub(crate) fn stream(words: &[u64]) -> Rng {
        let mut mix = 0x6A09_E667_F3BC_C908_u64;
        for &w in words {
            mix ^= w;
            mix = splitmix64(&mut mix);
        }
        let mut sm = mix;
        let state = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { state }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in the open interval (0, 1): never exactly 0 or 1, so inverse CDFs stay finite.
    pub(crate) fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw (by inversion, so one uniform gives one normal).
    pub(crate) fn normal(&mut self) -> f64 {
        inverse_normal_cdf(self.open01())
    }

    /// Uniform integer in `[0, n)`, `n > 0` (Lemire's multiply-shift; the tiny bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;

/// `erf(x)` for `|x| < 2.5` by the all-positive series `2/√π e^{-x²} Σ 2ⁿx^{2n+1}/(2n+1)!!`
/// (no cancellation, so full double precision).
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs() {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if n > 200.0 {
            break;
        }
    }
    2.0 * FRAC_1_SQRT_PI * (-x2).exp() * sum
}

/// `erfcx(x) = e^{x²} erfc(x)` for `x >= 2.5` by the continued fraction
/// `1/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`, evaluated backwards.
fn erfcx_continued_fraction(x: f64) -> f64 {
    let mut tail = 0.0;
    for k in (1..=60).rev() {
        tail = (k as f64 / 2.0) / (x + tail);
    }
    FRAC_1_SQRT_PI / (x + tail)
}

/// The scaled complementary error function `e^{x²} erfc(x)`, accurate to about 1e-15 relative.
pub(crate) fn erfcx(x: f64) -> f64 {
    if x >= 2.5 {
        erfcx_continued_fraction(x)
    } else if x > -2.5 {
        (x * x).exp() * (1.0 - erf_series(x))
    } else {
        // erfc(x) = 2 - erfc(-x)
        2.0 * (x * x).exp() - erfcx_continued_fraction(-x)
    }
}

/// The complementary error function.
pub(crate) fn erfc(x: f64) -> f64 {
    if x >= 2.5 {
        (-x * x).exp() * erfcx_continued_fraction(x)
    } else if x > -2.5 {
        1.0 - erf_series(x)
    } else {
        2.0 - (-x * x).exp() * erfcx_continued_fraction(-x)
    }
}

/// The standard normal CDF Φ.
pub(crate) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The standard normal density φ.
pub(crate) fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ⁻¹(p) for `p` in (0, 1): Acklam's rational approximation (1e-9) polished by one Halley
/// step against our erfc, which brings it to about 1e-15.
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let p_low = 0.024_25;
    let x = if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // Halley refinement of e = Φ(x) - p; in the upper tail via 1 - Φ(x) to keep precision.
    let e = if p > 0.5 {
        (1.0 - p) - 0.5 * erfc(x / std::f64::consts::SQRT_2)
    } else {
        0.5 * erfc(-x / std::f64::consts::SQRT_2) - p
    };
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(&[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(&[1, 2]).next_u64(),
            Rng::stream(&[2, 1]).next_u64()
        );
        assert_ne!(
            Rng::stream(&[1]).next_u64(),
            Rng::stream(&[1, 0]).next_u64()
        );
    }

    #[test]
    fn uniforms_are_inside_the_open_interval_and_centred() {
        let mut rng = Rng::stream(&[7]);
        let n = 20_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let u = rng.open01();
            assert!(u > 0.0 && u < 1.0);
            sum += u;
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.01);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }

    #[test]
    fn erfc_matches_known_values() {
        let cases = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.5, 4.069_520_174_449_59e-4),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (-1.0, 1.842_700_792_949_715),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1e-13,
                "erfc({x}) = {got}, want {want}"
            );
        }
        assert!((erfcx(30.0) - 0.018_795_888_861_416_75).abs() < 1e-15);
    }

    #[test]
    fn inverse_normal_cdf_inverts_the_cdf() {
        for &p in &[1e-12, 1e-6, 0.001, 0.02, 0.3, 0.5, 0.7, 0.975, 0.999_999] {
            let x = inverse_normal_cdf(p);
            let back = normal_cdf(x);
            assert!(
                ((back - p) / p.min(1.0 - p)).abs() < 1e-12,
                "p={p} x={x} back={back}"
            );
        }
        assert!((inverse_normal_cdf(0.975) - 1.959_963_984_540_054).abs() < 1e-13);
        assert_eq!(inverse_normal_cdf(0.5), 0.0);
    }
}
