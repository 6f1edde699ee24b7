// The likelihood bound as a training objective (objective "bound"; seeds-fp.md section 5, docs/fp_diffusion.md):
// for a forward process with a closed-form Gaussian kernel and learned parameters (fp-noise, fp-drift),
//   -log p(x_0) <= E[-log pi(X_T) | x_0]
//                  + int_eps^T E[ 1/2 |s_theta - c_t|^2_Lambda - 1/2 |c_t|^2_Lambda - div f ] dt,   Lambda = beta' D,
// estimated per row with one t ~ q and one z: prior_cross_entropy(x_0) + (1/2 r^T W_t r + bound_offset(t)) / q(t).
// The proposal q is fixed, whatever the process does while it trains: half uniform and half log-uniform on
// [eps, T], q(t) = 1/(2 (T - eps)) + 1/(2 t log(T / eps)), with exact 1/q weights. The value is a bound in nats on
// the model-space negative log-likelihood (of x_eps; docs/fp_diffusion.md), comparable across forward processes,
// which denoising score matching alone is not (shrinking D lowers it: collapse).
#include <cmath>

#include "core/device.hpp"
#include "core/error.hpp"
#include "training/bound_terms.hpp"
#include "training/objective.hpp"
#include "training/trainer.hpp"

namespace sdeflow {

namespace {

constexpr uint64_t kTimeStream = 2, kNoiseStream = 3, kChoiceStream = 5, kRegulariserStream = 7;

class LikelihoodBound final : public Objective {
 public:
  LikelihoodBound(NetworkModel& model, const TrainOptions& options, at::Device device)
      : model_(model), options_(options), device_(device) {
    const auto& process = *model_.process;
    simulated_ = !process.has_likelihood_bound();
    if (simulated_ && !(process.state_dependent_diffusion() && process.has_noise_parameterisation())) {
      throw InputError("--objective bound needs a forward process with a closed-form likelihood bound (fp-noise, "
                       "fp-drift) or a simulated one (fp-field); process " + process.name() +
                       " has neither (train it with --objective dsm)");
    }
    if ((options.reg_kinetic > 0 || options.reg_jacobian > 0) && (!process.learned() || options.strategy == "fixed")) {
      throw InputError("--reg-kinetic and --reg-jacobian train the forward process: they need a learned process "
                       "(fp-noise, fp-drift, fp-field) and --strategy joint or mix");
    }
    if (model_.parameterisation != Parameterisation::noise) {
      throw InputError("--objective bound trains the noise parameterisation only, not " +
                       to_string(model_.parameterisation));
    }
    if (model_.config.output_dim != 0) throw InputError("--objective bound: the network must predict the whole state");
    eps_ = options.eps;
    T_ = process.time_range().T;
    if (!(eps_ > 0 && eps_ < T_)) throw InputError("--eps must lie in (0, T)");
  }

  std::string name() const override { return "bound"; }

  std::vector<ParameterGroup> parameter_groups() const override {
    ParameterGroup network;
    network.name = "network";
    for (const auto& item : model_.network->named_parameters()) network.parameters.emplace_back(item.key(), item.value());
    std::vector<ParameterGroup> groups = {network};
    if (options_.strategy != "fixed" && model_.process->learned()) {
      ParameterGroup process;
      process.name = "process";
      process.lr_factor = options_.forward_lr > 0 ? options_.forward_lr / options_.lr : 1.0;
      process.parameters = model_.process->learned_parameters();
      groups.push_back(process);
    }
    return groups;
  }

  // q(t) on [eps, T] and draws from it.
  at::Tensor density(const at::Tensor& t) const {
    return 0.5 / (T_ - eps_) + 0.5 / (t * std::log(T_ / eps_));
  }

  at::Tensor loss(const at::Tensor& x0, int64_t step, uint64_t seed) override {
    auto& process = *model_.process;
    const bool train_process =
        options_.strategy == "joint" || (options_.strategy == "mix" && step < options_.forward_steps);
    process.set_trainable(train_process);
    const int64_t batch = x0.size(0);
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    auto time_generator = make_generator(at::kCPU, step_seed(seed, step, kTimeStream));
    auto choice_generator = make_generator(at::kCPU, step_seed(seed, step, kChoiceStream));
    const auto u = at::rand({batch}, time_generator, f64);
    const auto log_uniform = eps_ * at::pow(T_ / eps_, u);
    const auto uniform = eps_ + (T_ - eps_) * u;
    const auto pick = at::rand({batch}, choice_generator, f64) < 0.5;
    const auto t64 = at::where(pick, uniform, log_uniform);
    auto noise_generator = make_generator(at::kCPU, step_seed(seed, step, kNoiseStream));
    const auto f32 = at::TensorOptions().device(device_).dtype(at::kFloat);
    // The network's score at model-space points (float64 CPU in and out; the network runs on the device).
    const ScoreFunction score = [&](const at::Tensor& x, const at::Tensor& t) {
      const auto prediction = model_.network->forward(x.to(f32), t.to(f32)).reshape({x.size(0), -1});
      return process.noise_to_score(prediction.to(at::kCPU, at::kDouble), t);
    };
    at::Tensor bound, xt64;
    if (simulated_) {
      bound = simulated_bound(process, score, x0, t64, density(t64), options_.simulation_steps, noise_generator);
    } else {
      const auto z64 = at::randn(x0.sizes(), noise_generator, f64);
      xt64 = process.perturb(x0, t64, z64);   // differentiable in the process's parameters
      const auto prediction = model_.network->forward(xt64.to(f32), t64.to(f32)).reshape({batch, -1});
      // The score term in float64 on the CPU, where the process's parameters live.
      const auto matching = process.denoising_loss(prediction.to(at::kCPU, at::kDouble), z64, t64, true);
      const auto integrand = (matching + process.bound_offset(t64)) / density(t64);
      bound = process.prior_cross_entropy(x0) + integrand;
    }
    auto loss = bound.mean();
    if (train_process && (options_.reg_kinetic > 0 || options_.reg_jacobian > 0)) {
      // The regulariser at fresh x_t of the process (its own draw), weighted by 1/q like the bound's integrand;
      // its gradient reaches the forward process's parameters only.
      auto reg_generator = make_generator(at::kCPU, step_seed(seed, step, kRegulariserStream));
      if (simulated_) {
        xt64 = process.simulate(x0, at::zeros({batch}, f64), t64, options_.simulation_steps, reg_generator);
      } else if (!xt64.defined() || !xt64.requires_grad()) {
        xt64 = process.perturb(x0, t64, at::randn(x0.sizes(), reg_generator, f64));
      }
      const auto rows = flow_regulariser(process, score, xt64, t64, options_.reg_kinetic, options_.reg_jacobian,
                                         reg_generator) / density(t64);
      std::vector<at::Tensor> forward;
      for (const auto& item : process.learned_parameters()) forward.push_back(item.second);
      loss = loss + gradient_only_into(rows.mean(), forward);
    }
    return loss.to(device_, at::kFloat);
  }

 private:
  NetworkModel& model_;
  TrainOptions options_;
  at::Device device_;
  double eps_ = 1e-5, T_ = 1.0;
  bool simulated_ = false;   // no closed-form kernel: the implicit bound on simulated paths (fp-field)
};

}  // namespace

std::unique_ptr<Objective> make_likelihood_bound(NetworkModel& model, const TrainOptions& options, at::Device device) {
  return std::make_unique<LikelihoodBound>(model, options, device);
}

}  // namespace sdeflow
