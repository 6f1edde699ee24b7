// `sdeflow data`: draw a built-in 2-D toy data set (io/toy_data.hpp, docs/datasets.md) and write it as a data
// file (docs/formats.md, "Data files") with root attributes name and split, for `sdeflow train` and `nll`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "apps/common.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/toy_data.hpp"
#include "io/output_path.hpp"

namespace sdeflow::app {

namespace {

struct DataOptions {
  std::string name;
  int64_t n = 10000;
  uint64_t seed = 0;
  std::string out;
  std::string split = "train";
};

std::string known_names() {
  std::string text;
  for (const auto& name : toy_data_names()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

int run_data(const DataOptions& options) {
  // Everything that can be wrong with the input is checked before the output file is created.
  if (!is_toy_data(options.name)) {
    throw InputError("--name: unknown toy data set '" + options.name + "' (known: " + known_names() + ")");
  }
  if (options.n < 1) throw InputError("--n must be positive, got " + std::to_string(options.n));
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  if (options.split != "train" && options.split != "test") {
    throw InputError("--split must be train or test, got '" + options.split + "'");
  }
  at::Generator generator = make_generator(at::Device(at::kCPU), options.seed);
  const at::Tensor data = sample_toy_data(options.name, options.n, generator);
  DataAttributes attributes;
  attributes.name = options.name;
  attributes.split = options.split;
  save_data(options.out, data, attributes);   // atomic: the file is complete or absent
  std::printf("sdeflow data: %lld samples of %s (seed %llu, split %s), shape [%lld, 2] float64, wrote %s\n",
              static_cast<long long>(options.n), options.name.c_str(), static_cast<unsigned long long>(options.seed),
              options.split.c_str(), static_cast<long long>(options.n), options.out.c_str());
  return kExitOk;
}

}  // namespace

Runner add_data_command(CLI::App& app) {
  auto options = std::make_shared<DataOptions>();
  auto* cmd = app.add_subcommand("data", "write a built-in 2-D toy data set to an HDF5 data file");
  cmd->add_option("--name", options->name, "toy data set: " + known_names())->required();
  cmd->add_option("--n", options->n, "number of samples")->capture_default_str();
  cmd->add_option("--seed", options->seed, "random seed")->capture_default_str();
  cmd->add_option("--out", options->out, "output data file (HDF5, /data [N, 2])")->required();
  cmd->add_option("--split", options->split, "split attribute: train or test")->capture_default_str();
  return [options] { return run_data(*options); };
}

}  // namespace sdeflow::app
