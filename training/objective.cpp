// The training objective's pieces: where batches come from (toy generators, data files), how t is sampled
// (uniform, or importance sampling of the likelihood weighting g^2 / sigma^2), and the per-sample denoising
// score-matching loss (docs/training.md).
#include <cmath>
#include <limits>
#include <map>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/registry.hpp"
#include "core/tensor.hpp"
#include "io/data_file.hpp"
#include "io/toy_data.hpp"
#include "training/trainer.hpp"

namespace sdeflow {

Weighting parse_weighting(const std::string& name) {
  if (name == "likelihood") return Weighting::likelihood;
  if (name == "variance") return Weighting::variance;
  throw InputError("unknown weighting '" + name + "' (known: likelihood, variance)");
}

std::string to_string(Weighting weighting) {
  return weighting == Weighting::likelihood ? "likelihood" : "variance";
}

uint64_t step_seed(uint64_t seed, int64_t step, uint64_t stream) {
  // splitmix64 finaliser over (seed, stream, step): distinct, well-mixed seeds for every step and stream.
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  return mix(mix(mix(seed) ^ stream) ^ static_cast<uint64_t>(step));
}

namespace {

class ToyData : public TrainingData {
 public:
  explicit ToyData(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::vector<int64_t> shape() const override { return {2}; }
  bool integer() const override { return false; }
  int64_t levels() const override { return 0; }
  std::optional<int64_t> rows() const override { return std::nullopt; }
  at::Tensor batch(int64_t step, int64_t batch, uint64_t seed) const override {
    auto generator = make_generator(at::kCPU, step_seed(seed, step, 0));
    return sample_toy_data(name_, batch, generator);
  }

 private:
  std::string name_;
};

// Epoch e visits the rows in the order of a permutation seeded by (seed, e); the last partial batch is dropped.
class FileData : public TrainingData {
 public:
  FileData(DataFile file, int64_t levels) : file_(std::move(file)), levels_(levels) {}
  std::string name() const override { return file_.source; }
  std::vector<int64_t> shape() const override { return file_.shape; }
  bool integer() const override { return file_.integer; }
  int64_t levels() const override { return levels_; }
  std::optional<int64_t> rows() const override { return file_.data.size(0); }
  at::Tensor batch(int64_t step, int64_t batch, uint64_t seed) const override {
    const int64_t n = file_.data.size(0);
    if (batch > n) {
      throw InputError("--batch " + std::to_string(batch) + " is larger than the data set " + file_.source + " (" +
                       std::to_string(n) + " rows)");
    }
    const int64_t per_epoch = n / batch;
    const int64_t epoch = step / per_epoch, position = (step % per_epoch) * batch;
    if (epoch != cached_epoch_) {
      auto generator = make_generator(at::kCPU, step_seed(seed, epoch, 1));
      permutation_ = at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
      cached_epoch_ = epoch;
    }
    return file_.data.index_select(0, permutation_.narrow(0, position, batch));
  }

 private:
  DataFile file_;
  int64_t levels_;
  mutable int64_t cached_epoch_ = -1;
  mutable at::Tensor permutation_;
};

}  // namespace

std::shared_ptr<TrainingData> open_training_data(const std::string& name_or_path, int64_t levels) {
  if (is_toy_data(name_or_path)) return std::make_shared<ToyData>(name_or_path);
  if (name_or_path.find('/') == std::string::npos && name_or_path.find('.') == std::string::npos) {
    std::string known;
    for (const auto& name : toy_data_names()) known += (known.empty() ? "" : ", ") + name;
    throw InputError("--data '" + name_or_path + "' is neither a built-in data set (" + known + ") nor a file");
  }
  auto file = load_data(name_or_path);
  if (file.integer) {
    if (levels <= 0) {
      levels = file.value_range.size() == 2 ? static_cast<int64_t>(file.value_range[1]) + 1 : 256;
    }
    const double top = file.data.max().item<double>(), bottom = file.data.min().item<double>();
    if (bottom < 0 || top >= static_cast<double>(levels)) {
      throw InputError(name_or_path + ":/data: integer values must lie in 0 .. " + std::to_string(levels - 1) +
                       " (--levels " + std::to_string(levels) + "), found " + std::to_string(bottom) + " .. " +
                       std::to_string(top));
    }
  }
  return std::make_shared<FileData>(std::move(file), levels);
}

void validate(const TrainOptions& options) {
  auto positive = [](int64_t value, const char* name) {
    if (value <= 0) throw InputError(std::string(name) + " must be positive, got " + std::to_string(value));
  };
  positive(options.iterations, "--iters");
  positive(options.batch, "--batch");
  positive(options.log_every, "--log-every");
  positive(options.checkpoint_every, "--checkpoint-every");
  if (!(options.lr > 0) || !std::isfinite(options.lr)) throw InputError("--lr must be a positive number");
  if (options.warmup < 0) throw InputError("--warmup must be >= 0");
  if (options.decay != "cosine" && options.decay != "constant") {
    throw InputError("--decay must be cosine or constant, got '" + options.decay + "'");
  }
  if (!(options.lr_min_fraction >= 0 && options.lr_min_fraction <= 1)) {
    throw InputError("--lr-min-fraction must lie in [0, 1]");
  }
  if (!std::isfinite(options.grad_clip)) throw InputError("--grad-clip must be finite");
  if (!(options.ema >= 0 && options.ema < 1)) throw InputError("--ema must lie in [0, 1), got " + std::to_string(options.ema));
  if (!(options.eps > 0 && options.eps < 1)) throw InputError("--eps must lie in (0, 1)");
  (void)find_by_name(objective_registry(), options.objective, "objective");
  if (options.strategy != "joint" && options.strategy != "mix" && options.strategy != "fixed") {
    throw InputError("unknown --strategy '" + options.strategy + "' (known: joint, mix, fixed)");
  }
  if (options.forward_steps < 0) throw InputError("--forward-steps must be >= 0");
  if (options.strategy == "mix" && options.forward_steps <= 0) {
    throw InputError("--strategy mix needs --forward-steps N > 0 (the steps of the joint stage)");
  }
  if (!(options.forward_lr >= 0) || !std::isfinite(options.forward_lr)) throw InputError("--forward-lr must be >= 0");
  if (!(options.reg_kinetic >= 0) || !std::isfinite(options.reg_kinetic)) throw InputError("--reg-kinetic must be >= 0");
  if (!(options.reg_jacobian >= 0) || !std::isfinite(options.reg_jacobian)) {
    throw InputError("--reg-jacobian must be >= 0");
  }
  if (options.simulation_steps < 1 || options.simulation_steps > 100000) {
    throw InputError("--simulation-steps must lie in [1, 100000]");
  }
}

void store_options(const TrainOptions& options, NetworkModel& model) {
  auto& numbers = model.training_numbers;
  numbers["iterations"] = static_cast<double>(options.iterations);
  numbers["batch"] = static_cast<double>(options.batch);
  numbers["lr"] = options.lr;
  numbers["warmup"] = static_cast<double>(options.warmup);
  numbers["lr_min_fraction"] = options.lr_min_fraction;
  numbers["grad_clip"] = options.grad_clip;
  numbers["ema_rate"] = options.ema;
  numbers["importance_sampling"] = options.importance_sampling ? 1.0 : 0.0;
  numbers["eps"] = options.eps;
  numbers["log_every"] = static_cast<double>(options.log_every);
  numbers["checkpoint_every"] = static_cast<double>(options.checkpoint_every);
  auto& text = model.training_text;
  text["objective"] = options.objective;
  text["strategy"] = options.strategy;
  numbers["forward_steps"] = static_cast<double>(options.forward_steps);
  numbers["forward_lr"] = options.forward_lr;
  numbers["reg_kinetic"] = options.reg_kinetic;
  numbers["reg_jacobian"] = options.reg_jacobian;
  numbers["simulation_steps"] = static_cast<double>(options.simulation_steps);
  text["decay"] = options.decay;
  text["weighting"] = to_string(options.weighting);
  text["seed"] = std::to_string(options.seed);   // text: a uint64 does not fit a float64 exactly
}

TrainOptions stored_options(const NetworkModel& model) {
  auto number = [&](const char* name) {
    const auto found = model.training_numbers.find(name);
    if (found == model.training_numbers.end()) {
      throw InputError("/training: missing attribute '" + std::string(name) + "' (not a training checkpoint)");
    }
    return found->second;
  };
  auto text = [&](const char* name) {
    const auto found = model.training_text.find(name);
    if (found == model.training_text.end()) {
      throw InputError("/training: missing attribute '" + std::string(name) + "' (not a training checkpoint)");
    }
    return found->second;
  };
  TrainOptions options;
  options.iterations = static_cast<int64_t>(number("iterations"));
  options.batch = static_cast<int64_t>(number("batch"));
  options.lr = number("lr");
  options.warmup = static_cast<int64_t>(number("warmup"));
  options.lr_min_fraction = number("lr_min_fraction");
  options.grad_clip = number("grad_clip");
  options.ema = number("ema_rate");
  options.importance_sampling = number("importance_sampling") != 0.0;
  options.eps = number("eps");
  options.log_every = static_cast<int64_t>(number("log_every"));
  options.checkpoint_every = static_cast<int64_t>(number("checkpoint_every"));
  // Checkpoints written before objectives were named trained denoising score matching.
  const auto objective = model.training_text.find("objective");
  options.objective = objective == model.training_text.end() ? "dsm" : objective->second;
  if (const auto found = model.training_text.find("strategy"); found != model.training_text.end()) {
    options.strategy = found->second;
  }
  if (const auto found = model.training_numbers.find("forward_steps"); found != model.training_numbers.end()) {
    options.forward_steps = static_cast<int64_t>(found->second);
  }
  if (const auto found = model.training_numbers.find("forward_lr"); found != model.training_numbers.end()) {
    options.forward_lr = found->second;
  }
  // Absent from files written before the regulariser and the simulated bound: their defaults.
  if (const auto found = model.training_numbers.find("reg_kinetic"); found != model.training_numbers.end()) {
    options.reg_kinetic = found->second;
  }
  if (const auto found = model.training_numbers.find("reg_jacobian"); found != model.training_numbers.end()) {
    options.reg_jacobian = found->second;
  }
  if (const auto found = model.training_numbers.find("simulation_steps"); found != model.training_numbers.end()) {
    options.simulation_steps = static_cast<int64_t>(found->second);
  }
  options.decay = text("decay");
  options.weighting = parse_weighting(text("weighting"));
  try {
    options.seed = std::stoull(text("seed"));
  } catch (const std::logic_error&) {
    throw InputError("/training: attribute 'seed' is not an unsigned integer");
  }
  validate(options);
  return options;
}

// ---------------------------------------------------------------------------------------------------
// Time sampling

namespace {
constexpr int64_t kTableCells = 4096;
const auto kF64 = at::TensorOptions().dtype(at::kDouble);
}  // namespace

TimeSampler::TimeSampler(std::shared_ptr<const Process> process, Weighting weighting, bool importance_sampling,
                         double eps)
    : process_(std::move(process)), linear_(std::dynamic_pointer_cast<const LinearProcess>(process_)),
      weighting_(weighting),
      importance_(importance_sampling && weighting == Weighting::likelihood), eps_(eps), T_(process_->time_range().T) {
  if (!(eps_ > 0 && eps_ < T_)) throw InputError("--eps must lie in (0, T)");
  if (!linear_ && !process_->has_denoising_kernel()) {
    throw InputError("training: process " + process_->name() + " has no Gaussian denoising kernel");
  }
  if (!importance_) return;
  // g^2 / sigma^2 behaves like 1 / t near 0 for every linear process: cells geometric in t resolve it.
  grid_ = at::logspace(std::log10(eps_), std::log10(T_), kTableCells + 1, 10.0, kF64);
  grid_.index_put_({0}, eps_);
  grid_.index_put_({kTableCells}, T_);
  const auto left = grid_.narrow(0, 0, kTableCells), right = grid_.narrow(0, 1, kTableCells);
  const auto middle = at::sqrt(left * right);
  at::Tensor density;
  if (linear_) {
    const auto g = linear_->diffusion_coefficient(middle), sigma = linear_->sigma(middle);
    density = (g * g) / (sigma * sigma);
  } else {
    density = process_->weight_scale(middle);
  }
  const auto mass = density * (right - left);
  cdf_ = at::cat({at::zeros({1}, kF64), at::cumsum(mass, 0)});
  cdf_ = cdf_ / cdf_[kTableCells];
  cdf_.index_put_({kTableCells}, 1.0);
}

at::Tensor TimeSampler::weight(const at::Tensor& t) const {
  if (weighting_ == Weighting::variance) return at::ones_like(t);
  // Scalar processes: lambda / sigma^2 = g^2 / sigma^2 here; non-scalar ones carry W_t in their loss.
  at::Tensor ratio = at::ones_like(t);
  if (linear_) {
    const auto sigma = linear_->sigma(t);
    const auto g = linear_->diffusion_coefficient(t);
    ratio = (g * g) / (sigma * sigma);
  }
  if (!importance_) return ratio;
  // q(t) = (cdf_{j+1} - cdf_j) / (grid_{j+1} - grid_j) on cell j.
  auto cell = at::searchsorted(grid_, t, /*out_int32=*/false, /*right=*/true) - 1;
  cell = cell.clamp(0, kTableCells - 1);
  const auto density = (cdf_.index_select(0, cell + 1) - cdf_.index_select(0, cell)) /
                       (grid_.index_select(0, cell + 1) - grid_.index_select(0, cell));
  return ratio / ((T_ - eps_) * density);
}

std::pair<at::Tensor, at::Tensor> TimeSampler::sample(int64_t n, at::Generator& generator) const {
  const auto u = at::rand({n}, generator, kF64);
  at::Tensor t;
  if (!importance_) {
    t = eps_ + (T_ - eps_) * u;
  } else {
    auto cell = (at::searchsorted(cdf_, u, /*out_int32=*/false, /*right=*/true) - 1).clamp(0, kTableCells - 1);
    const auto c0 = cdf_.index_select(0, cell), c1 = cdf_.index_select(0, cell + 1);
    const auto t0 = grid_.index_select(0, cell), t1 = grid_.index_select(0, cell + 1);
    t = (t0 + (u - c0) / (c1 - c0) * (t1 - t0)).clamp(eps_, T_);
  }
  return {t, weight(t)};
}

at::Tensor denoising_loss(const at::Tensor& prediction, Parameterisation parameterisation, const at::Tensor& x0,
                          const at::Tensor& xt, const at::Tensor& z, const at::Tensor& t, const at::Tensor& weight,
                          const LinearProcess& process) {
  (void)x0;
  // sigma s + z: for the noise parameterisation -eps_theta + z, so the variance-weighted loss is the familiar
  // |eps_theta - z|^2 / 2.
  at::Tensor residual;
  if (parameterisation == Parameterisation::noise) {
    residual = z - prediction;
  } else {
    const auto score = prediction_to_score(parameterisation, prediction, xt, t, process);
    residual = per_sample(process.sigma(t)) * score + z;
  }
  const auto loss = residual.pow(2).sum(1) / 2;
  return weight.defined() ? weight * loss : loss;
}

}  // namespace sdeflow
