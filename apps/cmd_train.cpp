// placeholder: being written
#include <CLI/CLI.hpp>

#include "apps/common.hpp"
#include "core/error.hpp"

namespace sdeflow::app {
Runner add_train_command(CLI::App& app) {
  app.add_subcommand("train", "train a score network");
  return []() -> int { throw InputError("sdeflow train: not written yet"); };
}
}  // namespace sdeflow::app
