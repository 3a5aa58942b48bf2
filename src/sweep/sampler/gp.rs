//! A Gaussian-process regression model for the Bayesian sampler: Matérn-5/2 kernel with one
//! length scale per coordinate (ARD), hyperparameters fitted by maximising the log marginal
//! likelihood plus log-normal priors (analytic gradients), and posterior mean and variance with
//! their gradients for the acquisition optimiser.

use super::linalg::{
    MinimizeOptions, cholesky, inverse_from_cholesky, minimize_bounded, solve_lower,
    solve_upper_transposed,
};

const SQRT5: f64 = 2.236_067_977_499_79;

/// Priors and bounds of the hyperparameters, all on the natural-log scale. Targets are
/// standardised before fitting, so the signal variance is near 1 by construction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Priors {
    pub length_scale_mean: f64,
    pub length_scale_sd: f64,
    pub length_scale_bounds: (f64, f64),
    pub signal_mean: f64,
    pub signal_sd: f64,
    pub signal_bounds: (f64, f64),
    pub noise_mean: f64,
    pub noise_sd: f64,
    pub noise_bounds: (f64, f64),
}

impl Priors {
    /// Our defaults for `width` unit-cube coordinates: length scales around 0.35·width^¼
    /// (longer in more dimensions, where points are further apart), an almost noise-free
    /// objective (sweeps mostly train deterministic models; the fit may raise it).
    pub(crate) fn for_width(width: usize) -> Priors {
        Priors {
            length_scale_mean: (0.35f64).ln() + 0.25 * (width.max(1) as f64).ln(),
            length_scale_sd: 1.0,
            length_scale_bounds: ((0.01f64).ln(), (30.0f64).ln()),
            signal_mean: 0.0,
            signal_sd: 1.5,
            signal_bounds: ((0.05f64).ln(), (20.0f64).ln()),
            noise_mean: (1e-4f64).ln(),
            noise_sd: 3.0,
            noise_bounds: ((1e-8f64).ln(), (0.5f64).ln()),
        }
    }

    /// The start of the fit: the prior means (fixed, so a fit depends only on the data).
    fn start(&self, width: usize) -> Vec<f64> {
        let mut theta = vec![self.length_scale_mean; width];
        theta.push(self.signal_mean);
        theta.push(self.noise_mean);
        theta
    }

    fn bounds(&self, width: usize) -> (Vec<f64>, Vec<f64>) {
        let mut lower = vec![self.length_scale_bounds.0; width];
        let mut upper = vec![self.length_scale_bounds.1; width];
        lower.extend([self.signal_bounds.0, self.noise_bounds.0]);
        upper.extend([self.signal_bounds.1, self.noise_bounds.1]);
        (lower, upper)
    }
}

/// Fitted hyperparameters: `[ln ℓ_1 .. ln ℓ_d, ln s², ln σ²_noise]`.
pub(crate) type Hyperparameters = Vec<f64>;

/// Maximise the log posterior of the hyperparameters given points `x` (row-major, `n x width`)
/// and standardised targets `y`.
pub(crate) fn fit(
    x: &[f64],
    y: &[f64],
    width: usize,
    priors: &Priors,
    max_iterations: usize,
) -> Hyperparameters {
    let start = priors.start(width);
    let (lower, upper) = priors.bounds(width);
    let objective =
        |theta: &[f64], grad: &mut [f64]| negative_log_posterior(x, y, width, theta, priors, grad);
    let options = MinimizeOptions {
        max_iterations,
        gradient_tolerance: 1e-5,
        value_tolerance: 1e-9,
    };
    minimize_bounded(objective, &start, &lower, &upper, options).0
}

/// Matérn-5/2 correlation and the factor shared by its derivatives, at scaled distance `r`:
/// returns `(m(r), (5/3)(1 + √5 r) e^{-√5 r})`.
#[inline]
fn matern(r: f64) -> (f64, f64) {
    let e = (-SQRT5 * r).exp();
    let a = 1.0 + SQRT5 * r;
    ((a + 5.0 / 3.0 * r * r) * e, 5.0 / 3.0 * a * e)
}

fn scaled_distance(a: &[f64], b: &[f64], inv_ls2: &[f64]) -> f64 {
    let mut r2 = 0.0;
    for k in 0..a.len() {
        let d = a[k] - b[k];
        r2 += d * d * inv_ls2[k];
    }
    r2.sqrt()
}

/// Jitter added to the diagonal so a Cholesky factor exists even for repeated points.
const JITTER: f64 = 1e-9;

/// `-ln p(y | θ) - ln p(θ)` and its gradient (written into `grad`).
fn negative_log_posterior(
    x: &[f64],
    y: &[f64],
    width: usize,
    theta: &[f64],
    priors: &Priors,
    grad: &mut [f64],
) -> f64 {
    let n = y.len();
    let inv_ls2: Vec<f64> = theta[..width].iter().map(|l| (-2.0 * l).exp()).collect();
    let signal = theta[width].exp();
    let noise = theta[width + 1].exp();
    let mut k = vec![0.0; n * n];
    let mut slope = vec![0.0; n * n]; // s²·(5/3)(1+√5r)e^{-√5r}, for the length-scale gradient
    for i in 0..n {
        let xi = &x[i * width..(i + 1) * width];
        k[i * n + i] = signal + noise + JITTER;
        for j in 0..i {
            let r = scaled_distance(xi, &x[j * width..(j + 1) * width], &inv_ls2);
            let (m, s) = matern(r);
            k[i * n + j] = signal * m;
            k[j * n + i] = signal * m;
            slope[i * n + j] = signal * s;
        }
    }
    let Some(l) = cholesky(&k, n) else {
        grad.iter_mut().for_each(|g| *g = 0.0);
        return f64::INFINITY;
    };
    let mut alpha = y.to_vec();
    solve_lower(&l, n, &mut alpha);
    let data_fit: f64 = alpha.iter().map(|a| a * a).sum();
    solve_upper_transposed(&l, n, &mut alpha);
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum::<f64>() * 2.0;
    let kinv = inverse_from_cholesky(&l, n);
    let mut value =
        0.5 * data_fit + 0.5 * log_det + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();

    // dNLL/dθ = -½ Σ_ij W_ij ∂K_ij/∂θ with W = ααᵀ - K⁻¹.
    grad.iter_mut().for_each(|g| *g = 0.0);
    for i in 0..n {
        let w_ii = alpha[i] * alpha[i] - kinv[i * n + i];
        grad[width] += -0.5 * w_ii * signal;
        grad[width + 1] += -0.5 * w_ii * noise;
        let xi = &x[i * width..(i + 1) * width];
        for j in 0..i {
            let w = alpha[i] * alpha[j] - kinv[i * n + j];
            // off-diagonal pairs count twice
            grad[width] += -w * k[i * n + j];
            let s = -w * slope[i * n + j];
            let xj = &x[j * width..(j + 1) * width];
            for d in 0..width {
                let delta = xi[d] - xj[d];
                grad[d] += s * delta * delta * inv_ls2[d];
            }
        }
    }
    // Log-normal priors.
    let mut penalty = |index: usize, mean: f64, sd: f64| {
        let z = (theta[index] - mean) / sd;
        value += 0.5 * z * z;
        grad[index] += z / sd;
    };
    for d in 0..width {
        penalty(d, priors.length_scale_mean, priors.length_scale_sd);
    }
    penalty(width, priors.signal_mean, priors.signal_sd);
    penalty(width + 1, priors.noise_mean, priors.noise_sd);
    value
}

/// The GP conditioned on data with fixed hyperparameters.
#[derive(Debug, Clone)]
pub(crate) struct Posterior {
    x: Vec<f64>,
    n: usize,
    width: usize,
    inv_ls2: Vec<f64>,
    signal: f64,
    chol: Vec<f64>,
    alpha: Vec<f64>,
}

impl Posterior {
    /// `None` only if the kernel matrix cannot be factorised even with added jitter.
    pub(crate) fn new(x: &[f64], y: &[f64], width: usize, theta: &[f64]) -> Option<Posterior> {
        Posterior::with_exact_tail(x, y, width, theta, 0)
    }

    /// Like [`Posterior::new`], but the last `exact` points are taken as noise-free: the
    /// "fantasy" values of pending trials, where the variance must collapse so that the
    /// acquisition looks elsewhere.
    pub(crate) fn with_exact_tail(
        x: &[f64],
        y: &[f64],
        width: usize,
        theta: &[f64],
        exact: usize,
    ) -> Option<Posterior> {
        let n = y.len();
        let inv_ls2: Vec<f64> = theta[..width].iter().map(|l| (-2.0 * l).exp()).collect();
        let signal = theta[width].exp();
        let noise = theta[width + 1].exp();
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..i {
                let r = scaled_distance(
                    &x[i * width..(i + 1) * width],
                    &x[j * width..(j + 1) * width],
                    &inv_ls2,
                );
                let v = signal * matern(r).0;
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
        }
        let mut jitter = JITTER;
        let chol = loop {
            for i in 0..n {
                let noise = if i + exact >= n { 0.0 } else { noise };
                k[i * n + i] = signal + noise + jitter;
            }
            if let Some(l) = cholesky(&k, n) {
                break l;
            }
            jitter *= 100.0;
            if jitter > 1.0 {
                return None;
            }
        };
        let mut alpha = y.to_vec();
        solve_lower(&chol, n, &mut alpha);
        solve_upper_transposed(&chol, n, &mut alpha);
        Some(Posterior {
            x: x.to_vec(),
            n,
            width,
            inv_ls2,
            signal,
            chol,
            alpha,
        })
    }

    /// Posterior mean and variance (of the latent function) at `q`.
    pub(crate) fn predict(&self, q: &[f64]) -> (f64, f64) {
        let mut kq: Vec<f64> = self
            .x
            .chunks_exact(self.width)
            .map(|xi| self.signal * matern(scaled_distance(q, xi, &self.inv_ls2)).0)
            .collect();
        let mean: f64 = kq.iter().zip(&self.alpha).map(|(k, a)| k * a).sum();
        solve_lower(&self.chol, self.n, &mut kq);
        let explained: f64 = kq.iter().map(|v| v * v).sum();
        (mean, (self.signal - explained).max(1e-12))
    }

    /// Mean and variance at `q`, writing their gradients with respect to `q`.
    pub(crate) fn predict_with_gradient(
        &self,
        q: &[f64],
        mean_grad: &mut [f64],
        var_grad: &mut [f64],
    ) -> (f64, f64) {
        let (n, w) = (self.n, self.width);
        let mut kq = vec![0.0; n];
        let mut dk = vec![0.0; n * w]; // ∂k(q, x_i)/∂q_d
        let mut mean = 0.0;
        mean_grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..n {
            let xi = &self.x[i * w..(i + 1) * w];
            let r = scaled_distance(q, xi, &self.inv_ls2);
            let (m, s) = matern(r);
            kq[i] = self.signal * m;
            mean += kq[i] * self.alpha[i];
            for d in 0..w {
                let g = -self.signal * s * (q[d] - xi[d]) * self.inv_ls2[d];
                dk[i * w + d] = g;
                mean_grad[d] += g * self.alpha[i];
            }
        }
        let mut v = kq;
        solve_lower(&self.chol, n, &mut v);
        let explained: f64 = v.iter().map(|a| a * a).sum();
        solve_upper_transposed(&self.chol, n, &mut v); // now K⁻¹ k(q)
        var_grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..n {
            for d in 0..w {
                var_grad[d] -= 2.0 * v[i] * dk[i * w + d];
            }
        }
        let var = self.signal - explained;
        if var < 1e-12 {
            var_grad.iter_mut().for_each(|g| *g = 0.0);
        }
        (mean, var.max(1e-12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<f64>, Vec<f64>) {
        let xs: Vec<f64> = (0..8).map(|i| i as f64 / 7.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (6.0 * x).sin()).collect();
        (xs, ys)
    }

    #[test]
    fn posterior_interpolates_training_data() {
        let (x, y) = data();
        let theta = fit(&x, &y, 1, &Priors::for_width(1), 100);
        let post = Posterior::new(&x, &y, 1, &theta).unwrap();
        for (xi, yi) in x.iter().zip(&y) {
            let (m, v) = post.predict(&[*xi]);
            assert!((m - yi).abs() < 1e-2, "at {xi}: {m} vs {yi}");
            assert!(v < 1e-2);
        }
        // Between points the mean is sensible and the variance larger.
        let (m, v) = post.predict(&[0.5 / 7.0]);
        assert!((m - (6.0 * 0.5 / 7.0f64).sin()).abs() < 0.1);
        assert!(v > post.predict(&[0.0]).1);
    }

    #[test]
    fn hyperparameter_gradient_matches_finite_differences() {
        let x = vec![0.1, 0.2, 0.5, 0.9, 0.3, 0.3, 0.8, 0.1, 0.6, 0.6];
        let y = vec![0.5, -1.0, 0.3, 1.2, -0.4];
        let priors = Priors::for_width(2);
        let theta = vec![-0.7, -1.2, 0.3, -3.0];
        let mut grad = vec![0.0; 4];
        negative_log_posterior(&x, &y, 2, &theta, &priors, &mut grad);
        for k in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[k] += h;
            down[k] -= h;
            let mut scratch = vec![0.0; 4];
            let fd = (negative_log_posterior(&x, &y, 2, &up, &priors, &mut scratch)
                - negative_log_posterior(&x, &y, 2, &down, &priors, &mut scratch))
                / (2.0 * h);
            assert!(
                (fd - grad[k]).abs() < 1e-5 * fd.abs().max(1.0),
                "θ{k}: {fd} vs {}",
                grad[k]
            );
        }
    }

    #[test]
    fn prediction_gradient_matches_finite_differences() {
        let x = vec![0.1, 0.2, 0.5, 0.9, 0.3, 0.3, 0.8, 0.1];
        let y = vec![0.5, -1.0, 0.3, 1.2];
        let post = Posterior::new(&x, &y, 2, &[-1.0, -0.5, 0.0, -6.0]).unwrap();
        let q = [0.4, 0.6];
        let (mut gm, mut gv) = (vec![0.0; 2], vec![0.0; 2]);
        post.predict_with_gradient(&q, &mut gm, &mut gv);
        for d in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (q, q);
            up[d] += h;
            down[d] -= h;
            let (mu, vu) = post.predict(&up);
            let (md, vd) = post.predict(&down);
            assert!(((mu - md) / (2.0 * h) - gm[d]).abs() < 1e-5);
            assert!(((vu - vd) / (2.0 * h) - gv[d]).abs() < 1e-5);
        }
    }
}
