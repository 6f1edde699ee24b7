// `sdeflow info FILE`: what an sdeflow HDF5 file holds: format, kind, process, datasets with shapes and
// dtypes, and attributes.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "apps/common.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/model_file.hpp"

namespace sdeflow::app {

namespace {

std::string attribute_text(const h5::Location& location, const std::string& name) {
  try {
    return "\"" + location.attribute_string(name) + "\"";
  } catch (const InputError&) {
  }
  try {
    return std::to_string(location.attribute_int(name));
  } catch (const InputError&) {
  }
  try {
    const auto values = location.attribute_doubles(name);
    std::string text = values.size() == 1 ? "" : "[";
    for (size_t i = 0; i < values.size(); ++i) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%s%.6g", i ? ", " : "", values[i]);
      text += buffer;
    }
    return text + (values.size() == 1 ? "" : "]");
  } catch (const InputError&) {
  }
  return "(unreadable)";
}

void print_tree(const h5::Location& location, const std::string& indent) {
  for (const auto& name : location.attribute_names()) {
    std::printf("%s@%s = %s\n", indent.c_str(), name.c_str(), attribute_text(location, name).c_str());
  }
  for (const auto& child : location.children()) {
    const std::string path = (location.path() == "/" ? "/" : location.path() + "/") + child;
    bool is_dataset = true;
    std::vector<int64_t> shape;
    try {
      shape = location.dataset_shape(child);
    } catch (const InputError&) {
      is_dataset = false;
    }
    if (is_dataset) {
      std::string dims;
      for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
      std::printf("%s%s  %s [%s]\n", indent.c_str(), path.c_str(), location.dataset_type_name(child).c_str(),
                  dims.c_str());
    } else {
      std::printf("%s%s/\n", indent.c_str(), path.c_str());
      print_tree(location.group(child), indent + "  ");
    }
  }
}

int run_info(const std::string& path) {
  h5::File file(path, h5::Mode::read);
  if (!file.has_attribute("format")) {
    throw InputError(path + ": not an sdeflow file (no root attribute 'format')");
  }
  const auto format = file.attribute_string("format");
  std::printf("%s: %s", path.c_str(), format.c_str());
  if (file.has_attribute("version")) std::printf(" version %s", attribute_text(file, "version").c_str());
  if (file.has_attribute("kind")) std::printf(", kind %s", file.attribute_string("kind").c_str());
  if (file.has_attribute("complete")) std::printf(", %s", file.attribute_int("complete") ? "complete" : "INCOMPLETE");
  std::printf("\n");
  if (format == "sdeflow.model") {
    const auto model = load_model(path);   // validates the whole file and names the first problem
    std::printf("  process %s", model->process()->name().c_str());
    for (const auto& [key, value] : model->process()->parameters()) std::printf(", %s = %g", key.c_str(), value);
    std::printf("\n");
    for (const auto& line : model->describe()) std::printf("  %s\n", line.c_str());
  }
  print_tree(file, "  ");
  return kExitOk;
}

}  // namespace

Runner add_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("info", "describe an sdeflow HDF5 file (model, samples, ...)");
  cmd->add_option("file", *path, "the HDF5 file")->required();
  return [path] { return run_info(*path); };
}

}  // namespace sdeflow::app
