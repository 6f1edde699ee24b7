#pragma once
// Data files (docs/formats.md, "Data files"): the input of `sdeflow nll --data FILE`, one HDF5 dataset
// /data [N, D] of floating-point (float64/float32) or integer values, one sample per row. Root attributes
// are optional and ignored on reading; save_data writes format = "sdeflow.data", version = 1.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace sdeflow {

struct DataFile {
  at::Tensor data;        // [N, D] CPU float64 (integers converted exactly)
  bool integer = false;   // stored as an integer type
  std::string source;     // the path
};

// Reads and validates `path`. Every problem throws sdeflow::InputError with one message naming the file and
// object: a missing, unreadable or non-HDF5 file; no /data (or not a dataset); /data not 2-D; N == 0 or D == 0;
// a non-numeric element type (or uint64 / an integer beyond 2^53, which float64 cannot hold exactly); D !=
// expected_dim when expected_dim >= 0 ("data.h5:/data: rows have dimension 3 but the model has dimension 2");
// a NaN or Inf, naming the first bad row, counted from 0 ("data.h5:/data: row 17 is not finite (NaN or Inf)").
DataFile load_data(const std::string& path, int64_t expected_dim = -1);

// Writes `data` ([N, D]; float64, float32, an integer type, or bool stored as uint8; any device) as /data,
// compressed, with root attributes format = "sdeflow.data" and version = 1. The file is written under a
// temporary name in the same directory and renamed into place, so `path` is never a partial file (an
// existing file is replaced only once the new one is complete). InputError for a tensor that is not 2-D
// or of another type; IoError if the file cannot be written.
void save_data(const std::string& path, const at::Tensor& data);

}  // namespace sdeflow
