#pragma once
// The three linear forward SDEs of score-based SDE models: VP (linear beta), sub-VP and VE (geometric
// sigma). Each has f(x, t) = a(t) x and scalar g(t), hence the Gaussian marginal
// x_t = alpha(t) x_0 + sigma(t) z. Coefficients and the VE convention are derived in docs/processes.md.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "processes/process.hpp"

namespace sdeflow {

class LinearProcess : public Process {
 public:
  // Marginal coefficients on a [B] time tensor: x_t = alpha(t) x_0 + sigma(t) z.
  virtual at::Tensor alpha(const at::Tensor& t) const = 0;
  virtual at::Tensor sigma(const at::Tensor& t) const = 0;
  // f(x, t) = drift_coefficient(t) x and G = g(t) I.
  virtual at::Tensor drift_coefficient(const at::Tensor& t) const = 0;
  virtual at::Tensor diffusion_coefficient(const at::Tensor& t) const = 0;
  // Standard deviation of the isotropic Gaussian prior at T.
  virtual double prior_std() const = 0;

  at::Tensor log_snr(const at::Tensor& t) const { return at::log(alpha(t)) - at::log(sigma(t)); }

  at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const override;
  std::optional<at::Tensor> drift_divergence(const at::Tensor& x, const at::Tensor& t) const override;
  Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const override;
  std::optional<Gaussian> marginal(const at::Tensor& x0, const at::Tensor& t) const override;
  // Exact transition from t - dt to t (the DDPM / SMLD ancestral discretisation in closed form).
  std::pair<at::Tensor, Diffusion> discretize(const at::Tensor& x, const at::Tensor& t,
                                               const at::Tensor& dt) const override;
  at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                          at::Generator& generator) const override;
  at::Tensor prior_log_prob(const at::Tensor& xT) const override;
  TimeRange time_range() const override { return range_; }

 protected:
  explicit LinearProcess(TimeRange range);
  TimeRange range_;
};

// dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW,  beta(t) = beta_min + t (beta_max - beta_min).
class VpProcess : public LinearProcess {
 public:
  VpProcess(double beta_min = 0.1, double beta_max = 20.0, TimeRange range = {});
  std::string name() const override { return "vp"; }
  at::Tensor alpha(const at::Tensor& t) const override;
  at::Tensor sigma(const at::Tensor& t) const override;
  at::Tensor drift_coefficient(const at::Tensor& t) const override;
  at::Tensor diffusion_coefficient(const at::Tensor& t) const override;
  double prior_std() const override { return 1.0; }
  std::map<std::string, double> parameters() const override;
  at::Tensor beta(const at::Tensor& t) const;
  at::Tensor integrated_beta(const at::Tensor& t) const;   // B(t) = int_0^t beta

 protected:
  double beta_min_, beta_max_;
};

// Same drift as VP, g(t)^2 = beta(t) (1 - exp(-2 B(t))); marginal std 1 - exp(-B(t)).
class SubVpProcess : public VpProcess {
 public:
  using VpProcess::VpProcess;
  std::string name() const override { return "subvp"; }
  at::Tensor sigma(const at::Tensor& t) const override;
  at::Tensor diffusion_coefficient(const at::Tensor& t) const override;
};

// dx = sqrt(d sigma^2/dt) dW,  sigma(t) = sigma_min (sigma_max / sigma_min)^t. The marginal variance is
// sigma(t)^2 - sigma_min^2, exact for the SDE started at x_0 (docs/processes.md, "VE convention").
class VeProcess : public LinearProcess {
 public:
  VeProcess(double sigma_min = 0.01, double sigma_max = 50.0, TimeRange range = {});
  std::string name() const override { return "ve"; }
  at::Tensor alpha(const at::Tensor& t) const override;
  at::Tensor sigma(const at::Tensor& t) const override;
  at::Tensor drift_coefficient(const at::Tensor& t) const override;
  at::Tensor diffusion_coefficient(const at::Tensor& t) const override;
  double prior_std() const override { return sigma_max_; }
  std::map<std::string, double> parameters() const override;
  at::Tensor noise_level(const at::Tensor& t) const;   // sigma_min (sigma_max/sigma_min)^t

 private:
  double sigma_min_, sigma_max_;
};

// Process registry: a name and its parameters (missing ones take the defaults above; unknown names or
// parameters, non-finite or out-of-range values throw InputError naming them).
std::shared_ptr<LinearProcess> make_linear_process(const std::string& name,
                                                   const std::map<std::string, double>& parameters);
std::vector<std::string> process_names();

// The scalar-coefficient capability (alpha, sigma, log-SNR), which DDIM/DPM, log-SNR grids, the noise and data
// parameterisations and the trainer's time sampler need: the process itself, or InputError naming `what` and
// the process (e.g. "ddim needs a scalar process (vp, subvp, ve); process fp is not").
std::shared_ptr<const LinearProcess> require_scalar_process(const std::shared_ptr<const Process>& process,
                                                            const std::string& what);

}  // namespace sdeflow
