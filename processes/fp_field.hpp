#pragma once
// FP-Diffusion with a state-dependent metric (seeds-fp.md sections 1 and 4; docs/fp_diffusion.md, "fp-field"):
//   dx = beta'(t) [ -1/2 D(x) x - omega x + 1/2 div D(x) ] dt + sqrt(beta'(t) D(x)) dW,   (div D)_j = sum_i d_i D_ij,
// D(x) a field of symmetric positive-definite matrices (a learned network), omega a constant antisymmetric matrix.
// N(0, I) is stationary for every such field. No transition density is known: training simulates the forward SDE
// (simulate()) and uses the implicit (divergence) form of the likelihood bound (training/simulated_bound.hpp); the
// probability flow is the cancelled form v = -beta' (1/2 D(x) (x + s) + omega x), which needs no div D.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "processes/process.hpp"

namespace sdeflow {

// x [B, n] -> D(x) [B, n, n], symmetric positive-definite, float64 on the CPU, differentiable in x and (when
// trainable) in its parameters.
class MetricField {
 public:
  virtual ~MetricField() = default;
  virtual int64_t dim() const = 0;
  virtual at::Tensor operator()(const at::Tensor& x) const = 0;
  // Learned tensors by name (float64 leaves); empty for a fixed field.
  virtual std::vector<std::pair<std::string, at::Tensor>> parameters() const { return {}; }
  virtual void set_trainable(bool trainable) { trainable_ = trainable; }
  bool trainable() const { return trainable_; }

 protected:
  at::Tensor param(const at::Tensor& p) const { return trainable_ ? p : p.detach(); }

 private:
  bool trainable_ = true;
};

// div D(x) ([B, n] float64 CPU) by autograd: n (n + 1) / 2 vector-Jacobian products of D's upper triangle. The result
// keeps its graph (create_graph) when gradient mode is on and x requires a gradient or the field trains; otherwise
// it is detached.
at::Tensor metric_divergence(const MetricField& field, const at::Tensor& x);

// D(x) = M(x) M(x)^T + c I with M(x) = sqrt(1 - c) I + tril(N(x)), N an MLP n -> width -> width -> n (n + 1) / 2
// (SiLU, smooth to every order), c = floor in (0, 1]. The last layer starts at zero, so a fresh field is D = I (VP).
// Tensors: metric_w1 [width, n], metric_b1 [width], metric_w2 [width, width], metric_b2 [width],
// metric_w3 [m, width], metric_b3 [m], m = n (n + 1) / 2.
class NetworkMetric final : public MetricField {
 public:
  NetworkMetric(int64_t n, int64_t width, double floor, uint64_t seed);
  // From stored tensors; InputError naming a missing, misshapen or non-finite one.
  NetworkMetric(const std::map<std::string, at::Tensor>& tensors, double floor);
  int64_t dim() const override { return n_; }
  at::Tensor operator()(const at::Tensor& x) const override;
  std::vector<std::pair<std::string, at::Tensor>> parameters() const override;
  double floor() const { return floor_; }

 private:
  int64_t n_ = 0;
  double floor_ = 0.1;
  at::Tensor w1_, b1_, w2_, b2_, w3_, b3_;
  at::Tensor embed_;   // [m, n * n]: the lower triangle's entries into a flattened n x n matrix
};

class MetricFpProcess final : public Process {
 public:
  // omega [n, n] antisymmetric (InputError otherwise); beta'(t) = beta_min + t (beta_max - beta_min).
  MetricFpProcess(std::shared_ptr<MetricField> metric, at::Tensor omega, double beta_min, double beta_max,
                  TimeRange range, double floor);

  std::string name() const override { return "fp-field"; }
  std::map<std::string, double> parameters() const override;
  std::map<std::string, at::Tensor> parameter_tensors() const override;   // the field's tensors and omega
  std::vector<std::pair<std::string, at::Tensor>> learned_parameters() const override;
  void set_trainable(bool trainable) override { metric_->set_trainable(trainable); }
  const MetricField& metric_field() const { return *metric_; }

  at::Tensor metric(const at::Tensor& x) const;   // D(x) [B, n, n]
  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override;
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override;   // full: sqrt(beta') chol D(x)
  bool state_dependent_diffusion() const override { return true; }
  at::Tensor diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const override;   // beta' div D
  at::Tensor flow_drift(const at::Tensor& x, const at::Tensor& t) const override;   // -beta' (1/2 D x + omega x)
  at::Tensor diffusion_squared(const at::Tensor& x, const at::Tensor& t, const at::Tensor& v) const override;
  // In the time B = B(t) the SDE is autonomous, dx = (-1/2 D(x) x + r(x)) dB + sqrt(D(x)) dW_B with
  // r = -omega x + 1/2 div D. Each step freezes D at the step's start and integrates the Ornstein-Uhlenbeck part
  // exactly (exact for a constant D and omega = 0), r by Euler:
  //   x' = E x + h r(x) + chol(I - E^2) z,   E = expm(-h D(x) / 2),   h = (B(t_to) - B(t_from)) / steps.
  at::Tensor simulate(const at::Tensor& x, const at::Tensor& t_from, const at::Tensor& t_to, int64_t steps,
                      at::Generator& generator) const override;

  // The network predicts eps with s = -eps / sigma_ref(t), sigma_ref = sqrt(1 - exp(-B(t))) (VP's, which this process
  // is at D = I): a scaling that keeps the prediction O(1) as the score grows like 1 / sigma near t = 0.
  bool has_noise_parameterisation() const override { return true; }
  at::Tensor noise_to_score(const at::Tensor& eps, const at::Tensor& t) const override;

  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override;
  at::Tensor prior_log_prob(const at::Tensor& xT) const override;
  TimeRange time_range() const override { return range_; }

  at::Tensor integrated(const at::Tensor& t) const;   // B(t), [B] float64 CPU
  at::Tensor beta_prime(const at::Tensor& t) const;   // beta'(t), [B] float64 CPU

 private:
  std::shared_ptr<MetricField> metric_;
  at::Tensor omega_;
  double beta_min_, beta_max_;
  TimeRange range_;
  double floor_;
  int64_t n_;
};

// A fresh fp-field process for data of dimension n: D = I (the network's last layer at zero), omega = 0.
std::shared_ptr<MetricFpProcess> make_fp_field_process(int64_t n, int64_t width, double floor, uint64_t seed,
                                                       double beta_min, double beta_max, TimeRange range);

}  // namespace sdeflow
