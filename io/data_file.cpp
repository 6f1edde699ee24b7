// Reading, validating and writing data files (io/data_file.hpp, docs/formats.md "Data files").
#include "io/data_file.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "io/h5.hpp"

namespace sdeflow {

namespace {

constexpr const char* kDataFormat = "sdeflow.data";
constexpr int64_t kDataVersion = 1;
constexpr const char* kDataset = "data";
constexpr const char* kNameAttribute = "name";
constexpr const char* kSplitAttribute = "split";
constexpr const char* kRangeAttribute = "value_range";
// Largest magnitude up to which every integer has an exact float64 representation.
constexpr int64_t kExactIntegerLimit = int64_t{1} << 53;

// The first row (0-based) where `bad_rows` ([N] bool) is true, or -1.
int64_t first_true(const at::Tensor& bad_rows) {
  if (!bad_rows.any().item<bool>()) return -1;
  return bad_rows.nonzero().min().item<int64_t>();
}

std::string range_text(const std::vector<double>& range) {
  std::string out = "[";
  for (size_t i = 0; i < range.size(); ++i) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%s%.17g", i > 0 ? ", " : "", range[i]);
    out += buffer;
  }
  return out + "]";
}

// A value_range must be [lo, hi]: two finite numbers with lo <= hi. `what` names where it came from.
void check_range(const std::vector<double>& range, const std::string& what) {
  const bool ok = range.size() == 2 && std::isfinite(range[0]) && std::isfinite(range[1]) && range[0] <= range[1];
  if (!ok) {
    throw InputError(what + ": expected 2 finite numbers [lo, hi] with lo <= hi, got " + range_text(range));
  }
}

// The first row of `data` ([N, D], any numeric type) with a value outside [lo, hi] (NaN counts as outside), or -1.
int64_t first_outside(const at::Tensor& data, const std::vector<double>& range) {
  const at::Tensor values = data.to(at::kDouble);
  return first_true((values.ge(range[0]) & values.le(range[1])).logical_not().any(1));
}

// A root string attribute, or "" if absent (InputError naming it if it is not a string).
std::string optional_string(const h5::File& file, const std::string& name) {
  return file.has_attribute(name) ? file.attribute_string(name) : std::string();
}

// Whether the file can be opened for reading at all; the error text otherwise (permissions, ...).
std::string unreadable_reason(const std::string& path) {
  std::FILE* handle = std::fopen(path.c_str(), "rb");
  if (handle == nullptr) return std::strerror(errno);
  std::fclose(handle);
  return "";
}

DataFile read_and_check(const std::string& path, int64_t expected_dim) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such file");
  if (!std::filesystem::is_directory(path, ec)) {
    const std::string reason = unreadable_reason(path);
    if (!reason.empty()) throw InputError(path + ": cannot read the file (" + reason + ")");
  }
  const h5::File file(path, h5::Mode::read);   // InputError for a directory or a non-HDF5 file
  const std::string what = file.describe(kDataset);
  if (!file.has(kDataset)) {
    throw InputError(what + ": no such dataset (a data file holds its samples in /data, shape [N, D])");
  }
  const std::string type = file.dataset_type_name(kDataset);   // InputError if /data is a group
  const bool is_float = type.rfind("float", 0) == 0;
  const bool is_integer = type.rfind("int", 0) == 0 || type.rfind("uint", 0) == 0;
  if (!is_float && !is_integer) {
    throw InputError(what + ": expected numbers (float64, float32 or an integer type), got " + type);
  }
  if (type == "uint64") {
    throw InputError(what + ": uint64 is not supported (float64 cannot hold every value exactly); store int64 or "
                            "float64");
  }
  if (is_float && type != "float64" && type != "float32") {
    throw InputError(what + ": expected float64 or float32, got " + type);
  }

  const std::vector<int64_t> shape = file.dataset_shape(kDataset);
  if (shape.size() < 2) {
    throw InputError(what + ": expected a dataset [N, ...] of 2 or more dimensions (2-D [N, D], or e.g. " +
                     "[N, C, H, W]), got " +
                     (shape.empty() ? std::string("a scalar") : "shape " + shape_text(shape) + " (" +
                                                                    std::to_string(shape.size()) + "-D)"));
  }
  const int64_t rows = shape[0];
  const std::vector<int64_t> sample_shape(shape.begin() + 1, shape.end());
  int64_t dim = 1;
  for (const int64_t extent : sample_shape) dim *= extent;
  // "(samples of shape [1, 8, 8])" where a sample is not a plain vector, so that D is explained.
  const std::string flattened =
      sample_shape.size() > 1 ? " (samples of shape " + shape_text(sample_shape) + ", flattened)" : "";
  if (rows == 0) throw InputError(what + ": no rows (shape " + shape_text(shape) + ")");
  if (dim == 0) throw InputError(what + ": rows have dimension 0 (shape " + shape_text(shape) + ")");
  if (expected_dim >= 0 && dim != expected_dim) {
    throw InputError(what + ": rows have dimension " + std::to_string(dim) + " but the model has dimension " +
                     std::to_string(expected_dim) + flattened);
  }

  DataFile result;
  result.source = path;
  result.shape = sample_shape;
  result.name = optional_string(file, kNameAttribute);
  result.split = optional_string(file, kSplitAttribute);
  if (file.has_attribute(kRangeAttribute)) {
    result.value_range = file.attribute_doubles(kRangeAttribute);
    check_range(result.value_range, file.describe() + " attribute '" + kRangeAttribute + "'");
  }

  const at::Tensor stored = file.read_tensor(kDataset);
  if (stored.sizes().vec() != shape) {
    throw InputError(what + ": could not be read as shape " + shape_text(shape));
  }
  const at::Tensor flat = stored.reshape({rows, dim});
  result.integer = !at::isFloatingType(stored.scalar_type());
  if (result.integer) {
    if (stored.scalar_type() == at::kLong) {
      const int64_t row = first_true(flat.abs().gt(kExactIntegerLimit).any(1));
      if (row >= 0) {
        throw InputError(what + ": row " + std::to_string(row) +
                         " holds an integer beyond 2^53, which float64 cannot represent exactly");
      }
    }
  } else {
    const int64_t row = first_true(at::isfinite(flat).logical_not().any(1));
    if (row >= 0) throw InputError(what + ": row " + std::to_string(row) + " is not finite (NaN or Inf)");
  }
  result.data = flat.to(at::kDouble).contiguous();
  if (!result.value_range.empty()) {
    const int64_t row = first_outside(result.data, result.value_range);
    if (row >= 0) {
      throw InputError(what + ": row " + std::to_string(row) + " has a value outside value_range " +
                       range_text(result.value_range));
    }
  }
  return result;
}

}  // namespace

DataFile load_data(const std::string& path, int64_t expected_dim) {
  try {
    return read_and_check(path, expected_dim);
  } catch (const IoError& error) {
    // The library could not open or read what looked like an HDF5 file (truncated, corrupt): for the
    // caller this is a bad input file like any other.
    throw InputError(error.what());
  }
}

void save_data(const std::string& path, const at::Tensor& data, const DataAttributes& attributes) {
  const std::string what = path + ":/" + kDataset;
  if (data.dim() < 2) {
    throw InputError(what + ": expected a tensor [N, ...] of 2 or more dimensions (2-D [N, D], or e.g. " +
                     "[N, C, H, W]), got " +
                     std::to_string(data.dim()) + " dimension(s)");
  }
  const at::ScalarType dtype = data.scalar_type();
  const bool storable = dtype == at::kDouble || dtype == at::kFloat || dtype == at::kLong || dtype == at::kInt ||
                        dtype == at::kShort || dtype == at::kChar || dtype == at::kByte || dtype == at::kBool;
  if (!storable) {
    throw InputError(what + ": cannot store tensors of type " + std::string(c10::toString(dtype)) +
                     " (float64, float32 or an integer type)");
  }
  if (!attributes.value_range.empty()) {
    check_range(attributes.value_range, path + ": attribute '" + kRangeAttribute + "'");
    const int64_t rows = data.size(0);
    const int64_t row =
        data.numel() == 0 ? -1 : first_outside(data.to(at::kCPU).reshape({rows, -1}), attributes.value_range);
    if (row >= 0) {
      throw InputError(what + ": row " + std::to_string(row) + " has a value outside value_range " +
                       range_text(attributes.value_range));
    }
  }

  h5::write_atomically(path, [&](const h5::File& file) {
    file.set_attribute("format", kDataFormat);
    file.set_attribute("version", kDataVersion);
    if (!attributes.name.empty()) file.set_attribute(kNameAttribute, attributes.name);
    if (!attributes.split.empty()) file.set_attribute(kSplitAttribute, attributes.split);
    if (!attributes.value_range.empty()) file.set_attribute(kRangeAttribute, attributes.value_range);
    file.write_tensor(kDataset, data, /*compress=*/true);
  });
}

}  // namespace sdeflow
