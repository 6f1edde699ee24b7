#pragma once
// The check every output file goes through before it is created (h5::File in create mode, h5::write_atomically,
// and each command before it starts work): a path that cannot name a new file is the caller's input error
// (InputError, exit status 2), named once, and nothing is created — no directory, no temporary file.
#include <filesystem>
#include <string>

#include "core/error.hpp"

namespace sdeflow {

// Throws InputError when `path` is a directory, lies in a directory that does not exist, or lies under
// something that is not a directory (a regular file). Other failures (permissions, a full disk) are found by
// the creation itself and are IoErrors.
inline void check_output_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  const fs::path target(path);
  if (fs::is_directory(target, ignored)) throw InputError(path + ": cannot write the file: it is a directory");
  const fs::path parent = target.parent_path();
  if (parent.empty()) return;   // the working directory
  fs::path existing = parent;   // the nearest ancestor that exists
  while (!existing.empty() && !fs::exists(existing, ignored)) {
    const fs::path up = existing.parent_path();
    if (up == existing) break;
    existing = up;
  }
  if (!existing.empty() && fs::exists(existing, ignored) && !fs::is_directory(existing, ignored)) {
    throw InputError(path + ": cannot write the file: " + existing.string() + " is not a directory");
  }
  if (existing != parent) {
    throw InputError(path + ": cannot write the file: the directory " + parent.string() + " does not exist");
  }
}

}  // namespace sdeflow
