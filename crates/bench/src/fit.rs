//! Growth exponents: the least-squares line through `(log x, log y)`.
//!
//! If cost grows as `c * x^k`, the points lie on a line of slope `k` on a log-log plot; the fitted
//! slope is the measured exponent that the scaling table compares with the protocol's message
//! complexity.

use serde::{Deserialize, Serialize};

/// `y = coefficient * x^exponent`, fitted on a log-log scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerFit {
    pub exponent: f64,
    pub coefficient: f64,
    /// The coefficient of determination of the log-log line, 1.0 for a perfect power law.
    pub r_squared: f64,
}

/// Fits `y = c * x^k` by least squares on `(ln x, ln y)`. `None` with fewer than two points, with
/// a non-positive coordinate (which has no logarithm), or when every `x` is the same.
pub fn fit_power_law(points: &[(f64, f64)]) -> Option<PowerFit> {
    if points.len() < 2 || points.iter().any(|&(x, y)| x <= 0.0 || y <= 0.0) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = logs.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let exponent = sxy / sxx;
    let intercept = mean_y - exponent * mean_x;
    // With every y equal the line is flat and explains everything there is to explain.
    let r_squared = if syy <= f64::EPSILON {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    Some(PowerFit {
        exponent,
        coefficient: intercept.exp(),
        r_squared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn recovers_an_exact_power_law() {
        let points: Vec<(f64, f64)> = [10.0, 100.0, 1000.0]
            .iter()
            .map(|&x: &f64| (x, 3.0 * x.powf(2.0)))
            .collect();
        let fit = fit_power_law(&points).expect("fits");
        assert!(close(fit.exponent, 2.0), "{fit:?}");
        assert!(close(fit.coefficient, 3.0), "{fit:?}");
        assert!(close(fit.r_squared, 1.0), "{fit:?}");
    }

    #[test]
    fn a_flat_series_has_exponent_zero() {
        let fit = fit_power_law(&[(1e4, 5.0), (1e5, 5.0), (1e6, 5.0)]).expect("fits");
        assert!(close(fit.exponent, 0.0), "{fit:?}");
        assert!(close(fit.coefficient, 5.0), "{fit:?}");
    }

    #[test]
    fn noisy_linear_growth_fits_near_one() {
        let fit = fit_power_law(&[(1e4, 1.1e4), (1e5, 0.9e5), (1e6, 1.05e6), (1e7, 0.98e7)])
            .expect("fits");
        assert!((fit.exponent - 1.0).abs() < 0.05, "{fit:?}");
        assert!(fit.r_squared > 0.99, "{fit:?}");
    }

    #[test]
    fn refuses_what_has_no_slope() {
        assert_eq!(fit_power_law(&[]), None);
        assert_eq!(fit_power_law(&[(1.0, 1.0)]), None);
        assert_eq!(fit_power_law(&[(2.0, 1.0), (2.0, 3.0)]), None);
        assert_eq!(fit_power_law(&[(0.0, 1.0), (2.0, 3.0)]), None);
        assert_eq!(fit_power_law(&[(1.0, -1.0), (2.0, 3.0)]), None);
    }
}
