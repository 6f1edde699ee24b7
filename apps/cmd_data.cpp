// placeholder: being written
#include <CLI/CLI.hpp>

#include "apps/common.hpp"
#include "core/error.hpp"

namespace sdeflow::app {
Runner add_data_command(CLI::App& app) {
  app.add_subcommand("data", "write a built-in toy data set to HDF5");
  return []() -> int { throw InputError("sdeflow data: not written yet"); };
}
}  // namespace sdeflow::app
