#pragma once
// Two-sample distances between generated samples and held-out data, for discretisation-robustness studies
// (sample quality vs number of steps): squared maximum mean discrepancy with a Gaussian (RBF) kernel,
// sliced Wasserstein-2, and energy distance. Inputs x [N, D] and y [M, D]; any floating dtype and device;
// results in float64. Formulas and estimators in docs/studies.md.
#include <ATen/ATen.h>

namespace sdeflow {

// Unbiased MMD^2 (U-statistic) with k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)). bandwidth <= 0: the median
// heuristic (median pairwise distance of the pooled samples, on at most 2000 of them).
double mmd2_rbf(const at::Tensor& x, const at::Tensor& y, double bandwidth = 0.0);
double median_heuristic_bandwidth(const at::Tensor& x, const at::Tensor& y);

// Sliced Wasserstein-2: sqrt of the mean over `projections` random unit directions of the 1-D W2^2 between the
// projected samples (quantile matching on a common grid of min(N, M) quantiles). Directions from `generator`.
double sliced_wasserstein2(const at::Tensor& x, const at::Tensor& y, int64_t projections, at::Generator& generator);

// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (unbiased within-sample terms; Euclidean norm).
double energy_distance(const at::Tensor& x, const at::Tensor& y);

}  // namespace sdeflow
