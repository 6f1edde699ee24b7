#pragma once
// Data files (docs/formats.md, "Data files"): the input of `sdeflow nll --data FILE` and `sdeflow train`, one
// HDF5 dataset /data [N, ...] of floating-point (float64/float32) or integer values, one sample per leading
// index ([N, D] vectors, [N, C, H, W] images). Optional root attributes: name, split ("train" / "test"), and
// value_range [lo, hi] (checked on reading). save_data writes format = "sdeflow.data", version = 1.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdeflow {

struct DataFile {
  at::Tensor data;               // [N, D] CPU float64, D = prod(shape) (integers converted exactly)
  std::vector<int64_t> shape;    // one sample's stored shape: [D] for a 2-D /data, [C, H, W] for images
  bool integer = false;          // stored as an integer type
  std::string source;            // the path
  std::string name;              // root attribute "name", or "" if absent
  std::string split;             // root attribute "split", or "" if absent
  std::vector<double> value_range;   // root attribute "value_range" ([lo, hi]), or empty if absent
};

// Optional root attributes written by save_data.
struct DataAttributes {
  std::string name;
  std::string split;
  std::vector<double> value_range;   // empty, or [lo, hi] with every value inside
};

// Reads and validates `path`. Every problem throws sdeflow::InputError with one message naming the file and
// object: a missing, unreadable or non-HDF5 file; no /data (or not a dataset); /data of fewer than 2 dimensions;
// N == 0 or a zero-sized sample axis;
// a non-numeric element type (or uint64 / an integer beyond 2^53, which float64 cannot hold exactly); D !=
// expected_dim (compared with D = prod(shape)) when expected_dim >= 0 ("data.h5:/data: rows have dimension 3 but the model has dimension 2");
// a NaN or Inf, naming the first bad row, counted from 0 ("data.h5:/data: row 17 is not finite (NaN or Inf)");
// a value outside a value_range attribute (naming the row); a malformed value_range attribute.
DataFile load_data(const std::string& path, int64_t expected_dim = -1);

// Writes `data` ([N, ...] with at least 2 dimensions; float64, float32, an integer type, or bool stored as uint8; any device) as /data,
// compressed, with root attributes format = "sdeflow.data" and version = 1. The file is written under a
// temporary name in the same directory and renamed into place, so `path` is never a partial file (an
// existing file is replaced only once the new one is complete). InputError for a tensor of fewer than 2
// dimensions or of another type, or values outside attributes.value_range; IoError if the file cannot be written.
void save_data(const std::string& path, const at::Tensor& data, const DataAttributes& attributes = {});

}  // namespace sdeflow
