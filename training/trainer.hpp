#pragma once
// Denoising score matching (score-based SDE models, eq. 7; Song et al. 2021, "Maximum likelihood training
// of score-based diffusion models", for the likelihood weighting lambda = g^2 and its importance sampling
// of t) with Adam, warm-up and cosine decay, gradient clipping, an EMA of the weights, and atomic
// checkpoints that resume exactly. The loss per sample, with x_t = alpha(t) x_0 + sigma(t) z,
//   l(x_0, t, z) = lambda(t) / (2 sigma(t)^2) * || sigma(t) s_theta(x_t, t) + z ||^2,
// summed over dimensions (docs/training.md derives it and the estimator of its t-integral).
#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/network_file.hpp"
#include "training/objective.hpp"

namespace sdeflow {

enum class Weighting { likelihood, variance };
Weighting parse_weighting(const std::string& name);   // "likelihood" | "variance"; InputError otherwise
std::string to_string(Weighting weighting);

// Where batches come from: a built-in toy generator (a fresh batch every step) or a data file (epochs of a
// permutation, dropping the last partial batch). Every batch is a function of (seed, step) only, so a resumed
// run sees the batches the uninterrupted run would have seen.
class TrainingData {
 public:
  virtual ~TrainingData() = default;
  virtual std::string name() const = 0;                 // the toy name or the file path
  virtual std::vector<int64_t> shape() const = 0;       // one sample's shape
  virtual bool integer() const = 0;                     // integer data (dequantised while training)
  virtual int64_t levels() const = 0;                   // integer data: values 0 .. levels - 1
  virtual std::optional<int64_t> rows() const = 0;      // finite data sets: N
  // The data-space batch of step `step`: [batch, D] float64 on the CPU.
  virtual at::Tensor batch(int64_t step, int64_t batch, uint64_t seed) const = 0;
};
// A toy data set name (io/toy_data.hpp) or a data file path (io/data_file.hpp); InputError for neither.
// `levels` <= 0: integer files take value_range's upper end + 1 when present, else 256.
std::shared_ptr<TrainingData> open_training_data(const std::string& name_or_path, int64_t levels = 0);

struct TrainOptions {
  std::string objective = "dsm";        // objective_registry() name
  // Objectives that train a learned forward process (bound): "joint" (process and score together), "mix" (joint for
  // forward_steps steps, then the process frozen), "fixed" (the process never trains); its learning rate.
  std::string strategy = "joint";
  int64_t forward_steps = 0;            // mix: steps of the joint stage
  double forward_lr = 0.0;              // the process's peak learning rate; 0: lr
  // Regulariser of the probability-flow field (Finlay et al.; docs/fp_diffusion.md): weights of int E|v|^2 dt and
  // int E|eps^T grad_x v|^2 dt, whose gradients go into the forward process's parameters only.
  double reg_kinetic = 0.0;
  double reg_jacobian = 0.0;
  // A process without a closed-form kernel (fp-field): steps of each simulated segment, [0, t] and [t, T].
  int64_t simulation_steps = 32;
  int64_t iterations = 2000;
  int64_t batch = 256;
  double lr = 1e-3;
  int64_t warmup = 100;                 // linear warm-up over the first steps
  std::string decay = "cosine";         // "cosine" (to lr * lr_min_fraction at the last step) | "constant"
  double lr_min_fraction = 0.01;
  double grad_clip = 1.0;               // maximum global gradient norm; <= 0: no clipping
  double ema = 0.999;                   // EMA rate; 0 keeps the raw weights only
  Weighting weighting = Weighting::variance;
  bool importance_sampling = true;      // likelihood weighting: sample t with density proportional to g^2 / sigma^2
  double eps = 1e-5;                    // t is drawn from [eps, T]
  uint64_t seed = 0;
  int64_t log_every = 10;               // loss log: the mean loss of each block of this many steps
  int64_t checkpoint_every = 500;       // atomic checkpoint to the output file every so many steps (and at the end)
};
void validate(const TrainOptions& options);
// Reads/writes the options as /training attributes (training_text / training_numbers of a NetworkModel).
void store_options(const TrainOptions& options, NetworkModel& model);
TrainOptions stored_options(const NetworkModel& model);   // InputError naming a missing attribute

// Samples t in [eps, T] and returns the weight w(t) that makes w(t) |sigma s + z|^2 / 2 an unbiased estimate of
// the time average (1 / (T - eps)) int_eps^T lambda(t) / sigma(t)^2 E|sigma s + z|^2 / 2 dt: uniform t with weight
// lambda(t) / sigma(t)^2, or, for the likelihood weighting with importance sampling, t from a tabulated density q
// proportional to g^2 / sigma^2 with weight g(t)^2 / (sigma(t)^2 (T - eps) q(t)) (exactly unbiased for the
// tabulated q, whatever its accuracy; nearly constant where the table resolves the density).
class TimeSampler {
 public:
  // Any process with a denoising kernel. For a non-scalar one (fp, cld) the weighting lives in the loss
  // (Process::denoising_loss's W_t) and the weight returned here is the importance weight 1 / ((T - eps) q(t))
  // for q proportional to Process::weight_scale (tr W_t / n), or 1 for uniform t.
  TimeSampler(std::shared_ptr<const Process> process, Weighting weighting, bool importance_sampling, double eps);
  // times [n] and weights [n], float64 on the CPU, from `generator` (a CPU generator).
  std::pair<at::Tensor, at::Tensor> sample(int64_t n, at::Generator& generator) const;
  // The weight of given times ([n] float64 CPU) under this sampler.
  at::Tensor weight(const at::Tensor& t) const;

 private:
  std::shared_ptr<const Process> process_;
  std::shared_ptr<const LinearProcess> linear_;   // the scalar-coefficient capability, or null
  Weighting weighting_;
  bool importance_;
  double eps_, T_;
  at::Tensor grid_, cdf_;   // [M + 1] CPU float64: cell edges in t, normalised cumulative mass
};

// The per-sample loss w(t) |sigma(t) s + z|^2 / 2 ([B]) for a network prediction in `parameterisation` at x_t
// (`x0` is not needed: it enters through x_t; an undefined `weight` means 1).
at::Tensor denoising_loss(const at::Tensor& prediction, Parameterisation parameterisation, const at::Tensor& x0,
                          const at::Tensor& xt, const at::Tensor& z, const at::Tensor& t, const at::Tensor& weight,
                          const LinearProcess& process);

struct TrainProgress {
  int64_t step = 0, iterations = 0;
  double loss = 0;            // the mean loss of the last log block
  double steps_per_second = 0;
};

class Trainer {
 public:
  // A new run: `model` carries process, config, parameterisation and data scaling; the network is built from
  // options.seed. `device`: the training device (float32 parameters).
  Trainer(NetworkModel model, TrainOptions options, std::shared_ptr<TrainingData> data, at::Device device);
  Trainer(const Trainer&) = delete;              // the objective refers to the model the trainer holds
  Trainer& operator=(const Trainer&) = delete;
  // Resumes from a checkpoint (a model file written by save_checkpoint): weights, EMA, Adam's moments, step,
  // loss log and options. `data` must be the same data set (checked by name and shape).
  static std::unique_ptr<Trainer> resume(const std::string& checkpoint, std::shared_ptr<TrainingData> data,
                                         at::Device device);

  // Trains until `options.iterations` steps are done, or `stop_after` steps (if > 0) counted from 0, writing a
  // checkpoint to `out` every options.checkpoint_every steps and at the end. `progress` is called every step.
  void run(const std::string& out, int64_t stop_after = 0,
           const std::function<void(const TrainProgress&)>& progress = nullptr);
  double step();                                   // one optimisation step; the batch's mean loss
  void save_checkpoint(const std::string& path);   // atomic: temporary file, then rename
  int64_t steps_done() const { return step_; }
  const NetworkModel& model() const { return model_; }
  const TrainOptions& options() const { return options_; }
  double last_loss() const { return last_loss_; }

 private:
  Trainer(NetworkModel model, TrainOptions options, std::shared_ptr<TrainingData> data, at::Device device,
          bool fresh);
  double learning_rate(int64_t step) const;
  void update_ema();

  NetworkModel model_;
  TrainOptions options_;
  std::shared_ptr<TrainingData> data_;
  at::Device device_;
  std::unique_ptr<Objective> objective_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::vector<std::string> names_;             // parameter names, in the optimizer's order (groups flattened)
  std::vector<at::Tensor> parameters_;         // the same tensors
  std::vector<double> lr_factors_;             // per optimizer parameter group
  int64_t step_ = 0;
  double last_loss_ = 0;
  double block_sum_ = 0;
  int64_t block_count_ = 0;
  std::vector<int64_t> log_steps_;
  std::vector<double> log_losses_;
};

// Generator seed of step `step` of a run seeded `seed` (splitmix64 of both): data, times and noise of a step.
uint64_t step_seed(uint64_t seed, int64_t step, uint64_t stream);

}  // namespace sdeflow
