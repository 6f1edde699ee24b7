#pragma once
// What the trainer minimises. An Objective turns a batch of model-space data into a differentiable scalar loss and
// says which tensors it trains, in named parameter groups (the score network; a learned forward process's
// parameters next). The trainer owns everything else: batches, the optimiser (one Adam parameter group per
// group, each with its own learning-rate factor), clipping, the EMA of the network, checkpoints and resume.
// Objectives are listed in objective_registry(); `sdeflow train --objective NAME` picks one and its name is
// stored with the run (/training attribute `objective`).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/network_file.hpp"

namespace sdeflow {

struct TrainOptions;

struct ParameterGroup {
  std::string name;              // "network", "process", ...
  double lr_factor = 1.0;        // this group's learning rate = lr_factor * the schedule's rate
  std::vector<std::pair<std::string, at::Tensor>> parameters;   // checkpoint names, unique across groups
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // The mean loss over the batch x0 ([B, D] float64 on the CPU, already in model space) of step `step` of a run
  // seeded `seed`: a differentiable scalar on the training device. Every random draw comes from generators seeded
  // by (seed, stream, step) (step_seed), so a resumed run repeats the uninterrupted one.
  virtual at::Tensor loss(const at::Tensor& x0, int64_t step, uint64_t seed) = 0;
  // The tensors this objective trains, by group, in a fixed order (the optimiser state is saved by name).
  virtual std::vector<ParameterGroup> parameter_groups() const = 0;
};

// The objective registry: name, one line of help, and a factory from the model being trained (its process,
// network, parameterisation), the options and the training device. InputError when the objective does not apply
// (a name it refuses says why).
struct ObjectiveInfo {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<Objective>(NetworkModel& model, const TrainOptions& options, at::Device device)> make;
};
const std::vector<ObjectiveInfo>& objective_registry();
std::unique_ptr<Objective> make_objective(const std::string& name, NetworkModel& model, const TrainOptions& options,
                                          at::Device device);
// The registered objectives' factories (training/score_matching.cpp, training/likelihood_bound.cpp).
std::unique_ptr<Objective> make_likelihood_bound(NetworkModel& model, const TrainOptions& options, at::Device device);

}  // namespace sdeflow
