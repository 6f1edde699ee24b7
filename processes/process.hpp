#pragma once
// The forward SDE  dx = f(x, t) dt + G(x, t) dW  on [eps, T] (score-based SDE models; FP-Diffusion
// eq. 10 for the general x-dependent G). Every process, linear or learned, implements this interface;
// reverse-time SDEs and probability-flow ODEs are assembled from it in processes/reverse.hpp.
#include <ATen/ATen.h>

#include <map>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "solvers/term.hpp"

namespace sdeflow {

// A Gaussian N(mean, cov) per sample. `std` is [B, 1] (isotropic), [B, D] (diagonal) or [B, D, D]
// (a lower-triangular factor L with cov = L L^T).
struct Gaussian {
  at::Tensor mean;
  at::Tensor std;
};

struct TimeRange {
  double eps = 1e-3;   // the smallest time solvers integrate to (score blows up at t = 0)
  double T = 1.0;
};

class Process {
 public:
  virtual ~Process() = default;
  virtual std::string name() const = 0;
  // The parameters as written to a model file's /process group: attributes, and float64 datasets (matrices).
  virtual std::map<std::string, double> parameters() const { return {}; }
  virtual std::map<std::string, at::Tensor> parameter_tensors() const { return {}; }
  // Learned parts: the tensors of the forward process an objective may optimise (FP-Diffusion's metric and
  // symplectic parameters, NDM's transform), by name, as leaves that can require gradients. They are saved with
  // the model through parameter_tensors() (float64 datasets under /process) and rebuilt by the registry's
  // factory. Empty for a fixed process. to() moves them (and any cached matrices) to a device and dtype.
  virtual std::vector<std::pair<std::string, at::Tensor>> learned_parameters() const { return {}; }
  bool learned() const { return !learned_parameters().empty(); }
  virtual void to(const at::Device& device, at::ScalarType dtype) { (void)device; (void)dtype; }
  // Whether the kernel operations below use the learned parameters with gradients (true) or detached (a frozen
  // stage of training); and re-deriving whatever the process caches from them after an optimiser step.
  virtual void set_trainable(bool trainable) { (void)trainable; }
  virtual void sync_learned() {}
  // The likelihood bound's score-free terms (seeds-fp.md section 5), for objectives that train the forward process:
  // E[-log pi(X_T) | x_0] per data row ([B]), and -1/2 E|c_t|^2_Lambda - div f at times t ([B]).
  virtual bool has_likelihood_bound() const { return false; }
  virtual at::Tensor prior_cross_entropy(const at::Tensor& x0) const;
  virtual at::Tensor bound_offset(const at::Tensor& t) const;

  virtual at::Tensor drift(const at::Tensor& x, const at::Tensor& t) const = 0;        // f(x, t): [B, D]
  virtual Diffusion diffusion(const at::Tensor& x, const at::Tensor& t) const = 0;     // G(x, t)
  // True when G depends on x; then the reverse drift also needs div(G G^T) (see docs/derivations.md).
  virtual bool state_dependent_diffusion() const { return false; }
  // div_x (G G^T)(x, t) row by row, [B, D]; zero unless state_dependent_diffusion().
  virtual at::Tensor diffusion_divergence(const at::Tensor& x, const at::Tensor& t) const;

  // The probability flow's drift without the score term, f - 1/2 div(G G^T) ([B, D]); FP processes override it with
  // the cancelled form -beta' (1/2 D x + omega x), which needs no divergence (seeds-fp.md section 4).
  virtual at::Tensor flow_drift(const at::Tensor& x, const at::Tensor& t) const;
  // G G^T v ([B, D]) at (x, t); processes that know G G^T directly (a metric field D(x)) override it to skip G.
  virtual at::Tensor diffusion_squared(const at::Tensor& x, const at::Tensor& t, const at::Tensor& v) const;
  // The probability-flow field v = f - 1/2 div(G G^T) - 1/2 G G^T s for a score s at (x, t). Differentiable in x and,
  // for a learned process in its trainable state, in its parameters (the regulariser of docs/fp_diffusion.md).
  at::Tensor flow_field(const at::Tensor& x, const at::Tensor& t, const at::Tensor& score) const {
    return flow_drift(x, t) - 0.5 * diffusion_squared(x, t, score);
  }
  // The forward SDE simulated from x at times t_from to t_to (both [B], t_from <= t_to) in `steps` steps per row,
  // with noise from `generator`: X_{t_to} given X_{t_from} = x, for processes without a closed-form transition.
  // Default: Euler-Maruyama in t. Differentiable in x and in the process's trainable parameters (pathwise).
  virtual at::Tensor simulate(const at::Tensor& x, const at::Tensor& t_from, const at::Tensor& t_to, int64_t steps,
                              at::Generator& generator) const;
  // A noise prediction turned into a score without a Gaussian kernel (the state-dependent FP process scales by a
  // reference VP's sigma(t)); noise_to_score then converts it.
  virtual bool has_noise_parameterisation() const { return has_denoising_kernel(); }

  // div_x f(x, t) ([B]) where it has a closed form (linear drift: D f(t)); the analytic trace needs it.
  virtual std::optional<at::Tensor> drift_divergence(const at::Tensor& x, const at::Tensor& t) const {
    (void)x; (void)t;
    return std::nullopt;
  }
  // p_{0t}(x_t | x_0) where it has a closed form.
  virtual std::optional<Gaussian> marginal(const at::Tensor& x0, const at::Tensor& t) const {
    (void)x0; (void)t;
    return std::nullopt;
  }

  // The transition x_{t-dt} -> x_t written as x_t = x_{t-dt} + f_disc + G_disc z, z ~ N(0, I); the
  // reverse-diffusion predictor inverts it. Default: the Euler discretisation f dt, G sqrt(dt).
  virtual std::pair<at::Tensor, Diffusion> discretize(const at::Tensor& x, const at::Tensor& t,
                                                       const at::Tensor& dt) const;

  virtual at::Tensor prior_sample(int64_t n, int64_t dim, const at::TensorOptions& options,
                                  at::Generator& generator) const = 0;
  virtual at::Tensor prior_log_prob(const at::Tensor& xT) const = 0;   // [B]
  virtual TimeRange time_range() const = 0;

  // Processes in an augmented state (CLD's phase space (x, v)): the state's dimension for data of dimension
  // data_dim and back, the data part of a state [B, n] -> [B, d], and a state drawn around data rows (the
  // hidden part from its initial law). Identity for processes on the data itself.
  virtual int64_t state_dim(int64_t data_dim) const { return data_dim; }
  // The Brownian motion's dimension for a state of dimension state_dim (CLD: the velocity half only).
  virtual int64_t noise_dim(int64_t state_dim) const { return state_dim; }
  virtual int64_t data_dim(int64_t state_dim) const { return state_dim; }
  virtual at::Tensor data_part(const at::Tensor& state) const { return state; }
  virtual at::Tensor augment(const at::Tensor& data, at::Generator& generator) const {
    (void)generator;
    return data;
  }
  bool augmented() const { return state_dim(1) != 1; }
  // The entropy of the hidden part's initial law (nats): -log p(x) <= E_v[-log p(x, v)] - H.
  virtual double augmented_entropy(int64_t data_dim) const {
    (void)data_dim;
    return 0.0;
  }
  // False when G G^T is singular and a model scores only where the noise acts (CLD's velocity half): samplers
  // that need the score on every coordinate (Langevin corrector, DDIM/DPM) refuse such a process.
  virtual bool score_on_every_coordinate() const { return true; }
  // The number of state coordinates that carry a score (CLD: the velocity half), and a prediction on those
  // coordinates ([B, scored_dim]) embedded in the state ([B, state_dim], zero elsewhere): a model of such a process
  // need only predict the scored part.
  virtual int64_t scored_dim(int64_t state_dim) const { return state_dim; }
  virtual at::Tensor embed_scored(const at::Tensor& part, int64_t state_dim) const;

  // Denoising score matching with a Gaussian kernel beyond scalar coefficients (seeds-fp.md section 5): the state
  // x_t = M_t x_0' + L_t z of data x_0 [B, d] (x_0' its state: CLD adds v_0 = 0 and puts gamma M in the kernel,
  // hybrid score matching), z ~ N(0, I) of the state's dimension; the score target -L_t^{-T} z. With a noise
  // prediction eps the score is -L_t^{-T} eps (zero where the model carries no score) and the per-sample loss
  // 1/2 r^T W_t r, r = z - eps, W_t = beta' L_t^{-1} Q L_t^{-T} (likelihood weighting, Lambda = G G^T) or the
  // projection on the scored coordinates (variance weighting, Lambda = P_t). weight_scale(t) = tr(W_t) / n is
  // the density the trainer's importance sampling of t follows. Defaults throw InputError naming the process.
  virtual bool has_denoising_kernel() const { return false; }
  virtual at::Tensor perturb(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& z) const;
  virtual at::Tensor noise_to_score(const at::Tensor& eps, const at::Tensor& t) const;
  virtual at::Tensor denoising_loss(const at::Tensor& eps, const at::Tensor& z, const at::Tensor& t,
                                    bool likelihood_weighting) const;
  virtual at::Tensor weight_scale(const at::Tensor& t) const;
};

}  // namespace sdeflow
