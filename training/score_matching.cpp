// Denoising score matching as an Objective (docs/training.md): scalar-coefficient processes with any
// parameterisation, and processes with a full-covariance Gaussian kernel (fp, cld) with the noise
// parameterisation; both weightings, importance sampling of t. The objective registry lives here too.
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/registry.hpp"
#include "core/tensor.hpp"
#include "training/objective.hpp"
#include "training/trainer.hpp"

namespace sdeflow {

namespace {

constexpr uint64_t kTimeStream = 2, kNoiseStream = 3;

std::vector<int64_t> batch_shape(int64_t batch, const std::vector<int64_t>& shape) {
  std::vector<int64_t> out{batch};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

class DenoisingScoreMatching final : public Objective {
 public:
  DenoisingScoreMatching(NetworkModel& model, const TrainOptions& options, at::Device device)
      : model_(model), weighting_(options.weighting), device_(device) {
    if (!model_.process) throw InputError("training: no process");
    linear_ = std::dynamic_pointer_cast<const LinearProcess>(model_.process);
    if (!linear_ && model_.parameterisation != Parameterisation::noise) {
      throw InputError("training: process " + model_.process->name() + " trains the noise parameterisation only, not " +
                       to_string(model_.parameterisation));
    }
    if (model_.process->learned()) {
      // The denoising loss is minimised by a degenerate forward process as much as by a good score: it trains the
      // score of a fixed process only. Learned processes train with an objective that bounds the likelihood.
      throw InputError("--objective dsm trains the score of a fixed forward process; process " +
                       model_.process->name() + " has learned parameters");
    }
    times_ = std::make_unique<TimeSampler>(model_.process, options.weighting, options.importance_sampling, options.eps);
  }

  std::string name() const override { return "dsm"; }

  std::vector<ParameterGroup> parameter_groups() const override {
    ParameterGroup group;
    group.name = "network";
    for (const auto& item : model_.network->named_parameters()) group.parameters.emplace_back(item.key(), item.value());
    return {group};
  }

  at::Tensor loss(const at::Tensor& x, int64_t step, uint64_t seed) override {
    const int64_t batch = x.size(0);
    auto time_generator = make_generator(at::kCPU, step_seed(seed, step, kTimeStream));
    const auto [t64, weight64] = times_->sample(batch, time_generator);
    auto noise_generator = make_generator(at::kCPU, step_seed(seed, step, kNoiseStream));
    const auto f32 = at::TensorOptions().device(device_).dtype(at::kFloat);
    const auto& shape = model_.config.data_shape;
    if (linear_) {
      const auto alpha = per_sample(linear_->alpha(t64)), sigma = per_sample(linear_->sigma(t64));
      const auto z64 = at::randn(x.sizes(), noise_generator, x.options());
      const auto xt64 = alpha * x + sigma * z64;
      // Only what the loss needs goes to the device (x_0 enters through x_t; the variance weighting's weight is 1).
      const auto z = z64.to(f32), xt = xt64.to(f32), t = t64.to(f32);
      const auto weight = weighting_ == Weighting::variance ? at::Tensor() : weight64.to(f32);
      const auto prediction = model_.network->forward(xt.reshape(batch_shape(batch, shape)), t).reshape({batch, -1});
      return denoising_loss(prediction, model_.parameterisation, at::Tensor(), xt, z, t, weight, *linear_).mean();
    }
    // The full-covariance loss of a Gaussian kernel (fp, cld): x_t = M_t x_0' + L_t z in the process's state.
    const auto& process = *model_.process;
    const int64_t n = process.state_dim(x.size(1));
    const auto z64 = at::randn({batch, n}, noise_generator, x.options());
    const auto xt64 = process.perturb(x, t64, z64);
    const auto z = z64.to(f32), xt = xt64.to(f32), t = t64.to(f32);
    auto prediction = model_.network->forward(xt.reshape(batch_shape(batch, shape)), t).reshape({batch, -1});
    // A network of the scored coordinates only (CLD: the velocity half) predicts zero noise elsewhere.
    if (prediction.size(1) != n) prediction = process.embed_scored(prediction, n);
    const bool likelihood = weighting_ == Weighting::likelihood;
    return (weight64.to(f32) * process.denoising_loss(prediction, z, t, likelihood)).mean();
  }

 private:
  NetworkModel& model_;
  Weighting weighting_;
  at::Device device_;
  std::shared_ptr<const LinearProcess> linear_;   // the scalar-coefficient capability, or null
  std::unique_ptr<TimeSampler> times_;
};

}  // namespace

const std::vector<ObjectiveInfo>& objective_registry() {
  static const std::vector<ObjectiveInfo> registry = {
      {"dsm",
       "denoising score matching of a fixed forward process (variance or likelihood weighting; any process with a "
       "Gaussian kernel)",
       [](NetworkModel& model, const TrainOptions& options, at::Device device) -> std::unique_ptr<Objective> {
         return std::make_unique<DenoisingScoreMatching>(model, options, device);
       }},
      {"bound",
       "the whole likelihood bound, prior and score-free terms included: trains a learned forward process (fp-noise, "
       "fp-drift) with the score (--strategy joint | mix | fixed)",
       make_likelihood_bound},
  };
  return registry;
}

std::unique_ptr<Objective> make_objective(const std::string& name, NetworkModel& model, const TrainOptions& options,
                                          at::Device device) {
  return find_by_name(objective_registry(), name, "objective").make(model, options, device);
}

}  // namespace sdeflow
