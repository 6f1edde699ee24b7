#pragma once
// The lookup every registry shares: an entry by its `name` member, or InputError listing the known names
// ("unknown solver 'x' (known: em, pc, ...)").
#include <string>
#include <vector>

#include "core/error.hpp"

namespace sdeflow {

template <class Info>
const Info& find_by_name(const std::vector<Info>& registry, const std::string& name, const std::string& what) {
  std::string known;
  for (const auto& info : registry) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw InputError("unknown " + what + " '" + name + "' (known: " + known + ")");
}

}  // namespace sdeflow
