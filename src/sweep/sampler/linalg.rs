//! The little numerical linear algebra and optimisation the Gaussian process needs: Cholesky
//! factorisation, triangular solves and a bounded limited-memory quasi-Newton minimiser.

/// `Σ a_i b_i` with four independent accumulators, so the compiler can vectorise it (a single
/// running sum is a dependency chain it must keep in order).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        let (x, y) = (&a[c * 4..c * 4 + 4], &b[c * 4..c * 4 + 4]);
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks * 4..n {
        sum += a[i] * b[i];
    }
    sum
}

/// Lower-triangular Cholesky factor of a symmetric positive-definite `n x n` row-major matrix;
/// `None` when a pivot is not positive (the caller adds jitter and retries).
pub(crate) fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let sum = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solve `L x = b` in place (forward substitution).
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let sum = b[i] - dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = sum / l[i * n + i];
    }
}

/// Solve `Lᵀ x = b` in place (back substitution).
pub(crate) fn solve_upper_transposed(l: &[f64], n: usize, b: &mut [f64]) {
    // Column-oriented: once x_i is known, remove its share from the rows above (row i of L is
    // contiguous, column i is not).
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let xi = b[i];
        for (bk, lik) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *bk -= lik * xi;
        }
    }
}

/// `A⁻¹` from the Cholesky factor of `A` (row-major, symmetric).
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // M = L⁻¹ (lower triangular), row by row: M_ij = -(Σ_{j<=k<i} L_ik M_kj) / L_ii, M_ii = 1/L_ii.
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let inv_diag = 1.0 / l[i * n + i];
        m[i * n + i] = inv_diag;
        let (done, rest) = m.split_at_mut(i * n);
        let row = &mut rest[..i];
        let li = &l[i * n..i * n + i];
        for (k, &lik) in li.iter().enumerate() {
            if lik != 0.0 {
                let mk = &done[k * n..k * n + k + 1];
                for (r, &v) in row[..=k].iter_mut().zip(mk) {
                    *r -= lik * v;
                }
            }
        }
        row.iter_mut().for_each(|r| *r *= inv_diag);
    }
    // A⁻¹ = Mᵀ M: (A⁻¹)_ij = Σ_{k >= max(i,j)} M_ki M_kj, accumulated row by row of M.
    let mut inv = vec![0.0; n * n];
    for k in 0..n {
        let mk = &m[k * n..k * n + k + 1];
        for i in 0..=k {
            let a = mk[i];
            let out = &mut inv[i * n..i * n + i + 1];
            for (o, &b) in out.iter_mut().zip(&mk[..=i]) {
                *o += a * b;
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            inv[j * n + i] = inv[i * n + j];
        }
    }
    inv
}

/// Settings of [`minimize_bounded`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinimizeOptions {
    pub max_iterations: usize,
    /// Stop when the projected gradient's largest component is below this.
    pub gradient_tolerance: f64,
    /// Stop when an iteration improves the value by less than this (relative).
    pub value_tolerance: f64,
}

/// Minimise `f` (which returns the value and writes the gradient) over the box `[lower, upper]`
/// by projected L-BFGS: the quasi-Newton direction restricted to the variables not held at a
/// bound, a projected backtracking (Armijo) line search, and memory 6. Deterministic; returns
/// the best point and value seen.
pub(crate) fn minimize_bounded<F>(
    mut f: F,
    start: &[f64],
    lower: &[f64],
    upper: &[f64],
    options: MinimizeOptions,
) -> (Vec<f64>, f64)
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const MEMORY: usize = 6;
    let n = start.len();
    let project = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lower[i], upper[i]);
        }
    };
    let mut x = start.to_vec();
    project(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() {
        return (x, fx);
    }
    let mut history: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::with_capacity(MEMORY);
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for iteration in 0..options.max_iterations {
        // Variables held at a bound by a gradient pointing outwards do not move.
        let free: Vec<bool> = (0..n)
            .map(|i| !((x[i] <= lower[i] && g[i] > 0.0) || (x[i] >= upper[i] && g[i] < 0.0)))
            .collect();
        let projected_gradient = (0..n)
            .filter(|&i| free[i])
            .map(|i| g[i].abs())
            .fold(0.0, f64::max);
        if projected_gradient < options.gradient_tolerance {
            break;
        }
        // Two-loop recursion on the free variables.
        let mut d: Vec<f64> = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
        let mut alphas = vec![0.0; history.len()];
        for (k, (s, y, rho)) in history.iter().enumerate().rev() {
            let a = rho * dot_free(s, &d, &free);
            alphas[k] = a;
            for i in 0..n {
                if free[i] {
                    d[i] -= a * y[i];
                }
            }
        }
        if let Some((s, y, _)) = history.last() {
            let gamma = dot_free(s, y, &free) / dot_free(y, y, &free).max(1e-300);
            if gamma.is_finite() && gamma > 0.0 {
                d.iter_mut().for_each(|di| *di *= gamma);
            }
        }
        for (k, (s, y, rho)) in history.iter().enumerate() {
            let b = rho * dot_free(y, &d, &free);
            for i in 0..n {
                if free[i] {
                    d[i] += s[i] * (alphas[k] - b);
                }
            }
        }
        let slope = dot(&g, &d);
        if slope >= 0.0 || !slope.is_finite() {
            history.clear();
            d = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
        }
        // The first step of steepest descent is scaled to a unit move.
        let mut step = if history.is_empty() {
            1.0 / d.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1.0)
        } else {
            1.0
        };
        let mut accepted = false;
        let mut f_new = fx;
        for _ in 0..30 {
            for i in 0..n {
                x_new[i] = x[i] + step * d[i];
            }
            project(&mut x_new);
            let decrease: f64 = (0..n).map(|i| g[i] * (x_new[i] - x[i])).sum();
            f_new = f(&x_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * decrease.min(0.0) && decrease < 0.0 {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
        let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() && sy > 0.0 {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((s, y, 1.0 / sy));
        }
        let improvement = fx - f_new;
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        fx = f_new;
        if iteration > 0 && improvement <= options.value_tolerance * fx.abs().max(1.0) {
            break;
        }
    }
    (x, fx)
}

fn dot_free(a: &[f64], b: &[f64], free: &[bool]) -> f64 {
    (0..a.len()).filter(|&i| free[i]).map(|i| a[i] * b[i]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reproduces_the_matrix_and_solves() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        let mut b = vec![1.0, 2.0, 3.0];
        solve_lower(&l, 3, &mut b);
        solve_upper_transposed(&l, 3, &mut b);
        for i in 0..3 {
            let s: f64 = (0..3).map(|k| a[i * 3 + k] * b[k]).sum();
            assert!((s - (i + 1) as f64).abs() < 1e-12);
        }
        let inv = inverse_from_cholesky(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((s - f64::from(i == j)).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    const OPTIONS: MinimizeOptions = MinimizeOptions {
        max_iterations: 200,
        gradient_tolerance: 1e-9,
        value_tolerance: 0.0,
    };

    #[test]
    fn minimiser_finds_the_rosenbrock_minimum() {
        let rosen = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let (x, fx) = minimize_bounded(rosen, &[-1.2, 1.0], &[-2.0, -2.0], &[2.0, 2.0], OPTIONS);
        assert!(fx < 1e-10, "{x:?} {fx}");
    }

    #[test]
    fn minimiser_respects_bounds() {
        // min (x-3)² + (y+1)² over [0,1]²: the corner (1, 0).
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 2.0 * (x[1] + 1.0);
            (x[0] - 3.0).powi(2) + (x[1] + 1.0).powi(2)
        };
        let (x, fx) = minimize_bounded(f, &[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0], OPTIONS);
        assert_eq!(x, vec![1.0, 0.0]);
        assert!((fx - 5.0).abs() < 1e-12);
    }
}
