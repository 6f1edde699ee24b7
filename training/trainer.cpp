// The training loop: one Adam step of denoising score matching per call, warm-up and cosine decay, gradient
// clipping, EMA, and checkpoints written atomically into a model file that also carries Adam's moments, so that
// a resumed run repeats the uninterrupted one step for step (docs/training.md).
#include "training/trainer.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "io/h5.hpp"

namespace sdeflow {

namespace {

constexpr uint64_t kDequantStream = 4;   // streams 2 and 3 (times, noise) belong to the objective

// The global gradient norm clipped to max_norm (torch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6)). One
// call of torch's when every gradient shares a device and dtype (the network alone); otherwise (a learned process's
// float64 CPU parameters next to a CUDA network) the squared norms are summed per device and combined on the CPU.
void clip_gradients(const std::vector<at::Tensor>& parameters, double max_norm) {
  bool uniform = true;
  for (const auto& p : parameters) {
    uniform = uniform && p.device() == parameters.front().device() && p.scalar_type() == parameters.front().scalar_type();
  }
  if (uniform) {
    torch::nn::utils::clip_grad_norm_(parameters, max_norm);
    return;
  }
  std::map<std::string, std::vector<at::Tensor>> squares;   // by device
  for (const auto& p : parameters) {
    if (p.grad().defined()) squares[p.device().str()].push_back(p.grad().to(at::kDouble).pow(2).sum());
  }
  double total = 0.0;
  for (const auto& [device, values] : squares) total += at::stack(values).sum().item<double>();
  const double coefficient = max_norm / (std::sqrt(total) + 1e-6);
  if (coefficient >= 1.0) return;
  torch::NoGradGuard no_grad;
  for (const auto& p : parameters) {
    if (p.grad().defined()) p.grad().mul_(coefficient);
  }
}

}  // namespace

Trainer::Trainer(NetworkModel model, TrainOptions options, std::shared_ptr<TrainingData> data, at::Device device)
    : Trainer(std::move(model), std::move(options), std::move(data), device, true) {}

Trainer::Trainer(NetworkModel model, TrainOptions options, std::shared_ptr<TrainingData> data, at::Device device,
                 bool fresh)
    : model_(std::move(model)), options_(std::move(options)), data_(std::move(data)), device_(device) {
  validate(options_);
  if (!model_.process) throw InputError("training: no process");
  if (const auto rows = data_->rows(); rows && options_.batch > *rows) {
    throw InputError("--batch " + std::to_string(options_.batch) + " is larger than the data set " + data_->name() +
                     " (" + std::to_string(*rows) + " rows)");
  }
  if (fresh) {
    validate(model_.config);
    model_.network = make_network(model_.config, options_.seed);
    model_.ema = options_.ema > 0 ? make_network(model_.config, options_.seed) : nullptr;
    store_options(options_, model_);
  }
  model_.network->to(device_, at::kFloat);
  model_.network->train();
  for (auto& parameter : model_.network->parameters()) parameter.set_requires_grad(true);
  if (model_.ema) {
    model_.ema->to(device_, at::kFloat);
    model_.ema->eval();
    for (auto& parameter : model_.ema->parameters()) parameter.set_requires_grad(false);
  }
  objective_ = make_objective(options_.objective, model_, options_, device_);
  // One Adam parameter group per objective group; the optimiser state is saved per tensor name.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (const auto& group : objective_->parameter_groups()) {
    std::vector<at::Tensor> tensors;
    for (const auto& [name, tensor] : group.parameters) {
      if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
        throw Error("objective " + objective_->name() + ": parameter name '" + name + "' appears twice");
      }
      names_.push_back(name);
      tensor.set_requires_grad(true);
      tensors.push_back(tensor);
      parameters_.push_back(tensor);
    }
    groups.emplace_back(tensors, std::make_unique<torch::optim::AdamOptions>(options_.lr * group.lr_factor));
    lr_factors_.push_back(group.lr_factor);
  }
  optimizer_ = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(options_.lr));
  model_.training_text["dataset"] = data_->name();
  if (model_.loss_step.defined()) {
    const auto steps = model_.loss_step.to(at::kLong).contiguous();
    const auto losses = model_.loss.to(at::kDouble).contiguous();
    log_steps_.assign(steps.data_ptr<int64_t>(), steps.data_ptr<int64_t>() + steps.numel());
    log_losses_.assign(losses.data_ptr<double>(), losses.data_ptr<double>() + losses.numel());
  }
}

double Trainer::learning_rate(int64_t step) const {
  double factor = 1.0;
  if (options_.warmup > 0) factor = std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(options_.warmup));
  if (options_.decay == "cosine") {
    const double progress = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(options_.iterations, 1));
    factor *= options_.lr_min_fraction + (1 - options_.lr_min_fraction) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  return options_.lr * factor;
}

double Trainer::step() {
  // The data-space batch, mapped to model space (integer data dequantised with fresh uniform noise).
  auto x = data_->batch(step_, options_.batch, options_.seed);
  const auto& scaling = model_.data;
  if (data_->integer()) {
    auto generator = make_generator(at::kCPU, step_seed(options_.seed, step_, kDequantStream));
    x = (x + at::rand(x.sizes(), generator, x.options())) / static_cast<double>(scaling.levels);
  }
  x = scaling.scale * x + scaling.shift;
  const auto loss = objective_->loss(x.reshape({x.size(0), -1}), step_, options_.seed);

  optimizer_->zero_grad();
  loss.backward();
  const double value = loss.item<double>();
  if (!std::isfinite(value)) {
    throw NumericalError("training diverged at step " + std::to_string(step_ + 1) +
                         ": the loss is not finite (try a smaller --lr); the last checkpoint is kept");
  }
  if (options_.grad_clip > 0) clip_gradients(parameters_, options_.grad_clip);
  auto& groups = optimizer_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    static_cast<torch::optim::AdamOptions&>(groups[i].options()).lr(lr_factors_[i] * learning_rate(step_));
  }
  optimizer_->step();
  update_ema();
  ++step_;
  last_loss_ = value;
  block_sum_ += value;
  ++block_count_;
  if (block_count_ == options_.log_every) {
    log_steps_.push_back(step_);
    log_losses_.push_back(block_sum_ / static_cast<double>(block_count_));
    block_sum_ = 0;
    block_count_ = 0;
  }
  return value;
}

void Trainer::update_ema() {
  if (!model_.ema) return;
  torch::NoGradGuard no_grad;
  const double rate = options_.ema;
  // Multi-tensor ops: a few kernel launches for all parameters on CUDA instead of two per tensor.
  std::vector<at::Tensor> ema, weights;
  for (const auto& p : model_.ema->parameters()) ema.push_back(p);
  for (const auto& p : model_.network->parameters()) weights.push_back(p.detach());
  at::_foreach_mul_(ema, at::Scalar(rate));
  at::_foreach_add_(ema, weights, at::Scalar(1 - rate));
  auto ema_buffers = model_.ema->named_buffers();
  for (const auto& item : model_.network->named_buffers()) ema_buffers[item.key()].copy_(item.value());
}

void Trainer::run(const std::string& out, int64_t stop_after,
                  const std::function<void(const TrainProgress&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = step_;
  const int64_t last = stop_after > 0 ? std::min(stop_after, options_.iterations) : options_.iterations;
  while (step_ < last) {
    step();
    if (step_ % options_.checkpoint_every == 0 && step_ < last) save_checkpoint(out);
    if (progress) {
      TrainProgress p;
      p.step = step_;
      p.iterations = options_.iterations;
      p.loss = log_losses_.empty() ? last_loss_ : log_losses_.back();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      p.steps_per_second = seconds > 0 ? static_cast<double>(step_ - first) / seconds : 0.0;
      progress(p);
    }
  }
  model_.training_numbers["wall_time_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() +
      (model_.training_numbers.count("wall_time_s") && first > 0 ? model_.training_numbers["wall_time_s"] : 0.0);
  save_checkpoint(out);
}

void Trainer::save_checkpoint(const std::string& path) {
  model_.process->sync_learned();   // a learned process re-derives its matrices from what the optimiser left
  model_.training_numbers["steps"] = static_cast<double>(step_);
  model_.training_numbers["final_loss"] = log_losses_.empty() ? last_loss_ : log_losses_.back();
  model_.training_numbers["log_block_sum"] = block_sum_;
  model_.training_numbers["log_block_count"] = static_cast<double>(block_count_);
  model_.loss_step = at::tensor(log_steps_, at::TensorOptions().dtype(at::kLong));
  model_.loss = at::tensor(log_losses_, at::TensorOptions().dtype(at::kDouble));
  if (log_steps_.empty()) {
    model_.loss_step = at::zeros({0}, at::kLong);
    model_.loss = at::zeros({0}, at::kDouble);
  }
  h5::write_atomically(path, [&](const h5::File& file) {
    write_network_model(file, model_);
    const auto training = file.has("training") ? file.group("training") : file.create_group("training");
    const auto group = training.create_group("optimizer");
    const auto& parameters = parameters_;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const auto found = optimizer_->state().find(parameters[i].unsafeGetTensorImpl());
      if (found == optimizer_->state().end()) continue;   // never stepped
      const auto& state = static_cast<const torch::optim::AdamParamState&>(*found->second);
      const auto entry = group.create_group(names_[i]);
      entry.set_attribute("step", static_cast<int64_t>(state.step()));
      entry.write_tensor("exp_avg", state.exp_avg());
      entry.write_tensor("exp_avg_sq", state.exp_avg_sq());
    }
    // Test hook (tests/test_training.cpp): SDEFLOW_TEST_KILL_AT_CHECKPOINT=K kills the process with SIGKILL while
    // it writes the checkpoint of step K, when the temporary file is filled but neither closed nor renamed:
    // the worst moment for a kill, reached deterministically.
    static const char* kill_at = std::getenv("SDEFLOW_TEST_KILL_AT_CHECKPOINT");
    if (kill_at != nullptr && std::strtoll(kill_at, nullptr, 10) == step_) std::raise(SIGKILL);
  });
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& checkpoint, std::shared_ptr<TrainingData> data,
                                         at::Device device) {
  auto model = load_network_model(checkpoint);
  const auto options = stored_options(model);
  if (data->name() != model.data.name || data->shape() != model.data.shape) {
    throw InputError(checkpoint + ": was trained on " + model.data.name + " " + shape_text(model.data.shape) +
                     ", not on " + data->name() + " " + shape_text(data->shape()));
  }
  if (options.ema > 0 && !model.ema) throw InputError(checkpoint + ": /network/ema is missing (the run keeps an EMA)");
  const int64_t steps = static_cast<int64_t>(model.training_numbers.at("steps"));
  std::unique_ptr<Trainer> trainer(new Trainer(std::move(model), options, std::move(data), device, false));
  trainer->step_ = steps;
  const auto& numbers = trainer->model_.training_numbers;
  if (numbers.count("log_block_sum")) trainer->block_sum_ = numbers.at("log_block_sum");
  if (numbers.count("log_block_count")) trainer->block_count_ = static_cast<int64_t>(numbers.at("log_block_count"));
  trainer->last_loss_ = numbers.count("final_loss") ? numbers.at("final_loss") : 0.0;

  h5::File file(checkpoint, h5::Mode::read);
  if (!file.has("training") || !file.group("training").has("optimizer")) {
    throw InputError(file.describe("training/optimizer") + ": missing (a model file without optimizer state cannot be resumed)");
  }
  const auto group = file.group("training").group("optimizer");
  const auto& parameters = trainer->parameters_;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& name = trainer->names_[i];
    if (!group.has(name)) {
      if (steps == 0) continue;
      throw InputError(group.describe(name) + ": missing optimizer state");
    }
    const auto entry = group.group(name);
    const auto shape = parameters[i].sizes().vec();
    auto state = std::make_unique<torch::optim::AdamParamState>();
    state->step(entry.attribute_int("step"));
    // In the parameter's own dtype and device (network weights float32 on the training device, a learned process's
    // parameters float64 on the CPU), so that resume is exact.
    const auto dtype = parameters[i].scalar_type();
    state->exp_avg(entry.read_tensor("exp_avg", dtype, shape).to(parameters[i].device()));
    state->exp_avg_sq(entry.read_tensor("exp_avg_sq", dtype, shape).to(parameters[i].device()));
    trainer->optimizer_->state()[parameters[i].unsafeGetTensorImpl()] = std::move(state);
  }
  return trainer;
}

}  // namespace sdeflow
