#pragma once
// Network model files (docs/formats.md, "Network model files"): the model-file root conventions of the
// Gaussian-mixture files (format = "sdeflow.model", version = 1, /process) with kind = "network", the
// architecture and its hyper-parameters, every parameter and buffer tensor by its module path (PyTorch's
// state_dict names and layouts), the EMA weights, the data scaling and the training metadata and loss log.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>

#include "networks/network.hpp"
#include "processes/linear.hpp"
#include "processes/score_model.hpp"

namespace sdeflow {

namespace h5 { class Location; class File; }

// Data space -> model space: y = scale * u + shift with u = x for real data and u = (x + U[0,1)) / levels for
// integer data (the likelihood code's DataTransform; bits/dim are reported in data space).
struct DataScaling {
  std::string name;          // the training data set ("checkerboard", a file name, ...)
  std::vector<int64_t> shape;   // one sample's shape in the data file ([2], [1, 8, 8], ...)
  double scale = 1.0;
  double shift = 0.0;
  bool integer = false;
  int64_t levels = 256;      // integer data: values 0 .. levels - 1
};

struct NetworkModel {
  NetworkConfig config;
  Parameterisation parameterisation = Parameterisation::noise;
  std::shared_ptr<Process> process;   // the network scores its state (CLD: 2 d coordinates for d-dimensional data)
  std::shared_ptr<ScoreNetwork> network;   // raw (optimised) weights
  std::shared_ptr<ScoreNetwork> ema;       // exponential moving average of the weights; null if the file has none
  DataScaling data;
  // /training attributes (steps, final_loss, dataset, seed, sdeflow_version, command_line, ...): text and numbers.
  std::map<std::string, std::string> training_text;
  std::map<std::string, double> training_numbers;
  at::Tensor loss_step;    // [S] int64, the training step of each logged loss (undefined: no log)
  at::Tensor loss;         // [S] float64

  // The weights evaluation uses: the EMA when present, else the raw weights.
  std::shared_ptr<ScoreNetwork> evaluation_network() const { return ema ? ema : network; }
};

// Writes everything above into an open, empty file (root attributes, /process, /network, /data, /training).
// The caller owns the file: a checkpoint adds its optimizer state and then renames the file into place.
void write_network_model(const h5::File& file, const NetworkModel& model);
// Reads and validates: the architecture is rebuilt from /network's attributes, then every parameter and buffer
// of the module must be present with its exact shape and a floating-point type; a missing, extra or mis-shaped
// tensor, an unknown architecture or a bad attribute throws InputError naming the file and the first mismatch
// ("m.h5:/network/parameters/net.0.weight: shape [64, 3] but the architecture needs [128, 3]").
// Tensors are loaded in the stored dtype's precision into a float64 or float32 network (the stored dtype).
NetworkModel read_network_model(const h5::File& file);

// Whole-file conveniences: save writes a temporary file next to `path` and renames it into place.
void save_network_model(const std::string& path, const NetworkModel& model);
NetworkModel load_network_model(const std::string& path);

// Copies every parameter and buffer of `from` into `to` (same architecture), keeping `to`'s device and dtype.
void copy_weights(const ScoreNetwork& from, ScoreNetwork& to);

}  // namespace sdeflow
