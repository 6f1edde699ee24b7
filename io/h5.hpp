#pragma once
// A thin RAII layer over the HDF5 C API: files, groups, attributes, and tensors <-> datasets with their
// dtype and shape checked. Every failure throws sdeflow::InputError (bad content: missing dataset, wrong
// dtype/shape) or sdeflow::IoError (the library could not read/write), naming the file and object.
#include <ATen/ATen.h>
#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sdeflow::h5 {

// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, attribute, property list) and
// closes it with the matching H5*close call.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// A location (file or group) in which datasets, groups and attributes live.
class Location {
 public:
  Location(Handle handle, std::string file, std::string path)
      : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)) {}
  hid_t id() const { return handle_.get(); }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  // "file.h5:/group/name" for messages.
  std::string describe(const std::string& child = "") const;

  bool has(const std::string& name) const;            // link exists (dataset or group)
  bool has_attribute(const std::string& name) const;
  Location group(const std::string& name) const;       // open; InputError if missing
  Location create_group(const std::string& name) const;

  // Attributes: scalar string / int64 / double, and 1-D double arrays. Writing replaces an existing one.
  void set_attribute(const std::string& name, const std::string& value) const;
  void set_attribute(const std::string& name, const char* value) const { set_attribute(name, std::string(value)); }
  void set_attribute(const std::string& name, int64_t value) const;
  void set_attribute(const std::string& name, int value) const { set_attribute(name, static_cast<int64_t>(value)); }
  void set_attribute(const std::string& name, double value) const;
  void set_attribute(const std::string& name, const std::vector<double>& value) const;
  void set_attribute(const std::string& name, const std::vector<int64_t>& value) const;   // int64 1-D array
  // Reading checks the attribute's class (string vs integer vs float) and throws InputError naming it.
  std::string attribute_string(const std::string& name) const;
  int64_t attribute_int(const std::string& name) const;
  double attribute_double(const std::string& name) const;   // accepts integer attributes too
  std::vector<double> attribute_doubles(const std::string& name) const;
  // A scalar or 1-D integer attribute (InputError for floats or strings).
  std::vector<int64_t> attribute_ints(const std::string& name) const;
  std::vector<std::string> attribute_names() const;
  std::vector<std::string> children() const;           // names of links in this group

  // Write a contiguous copy of `tensor` (CPU or CUDA; float64, float32, int64, int32, uint8, bool as uint8)
  // as dataset `name`. `compress`: chunked + deflate level 4.
  void write_tensor(const std::string& name, const at::Tensor& tensor, bool compress = false) const;
  // Read dataset `name` as a CPU tensor of its stored type (float64/float32/int64/int32/uint8/...).
  at::Tensor read_tensor(const std::string& name) const;
  // Read with checks: stored class must be floating point (integer accepted only if allow_integer),
  // converted to `dtype`; `shape` entries of -1 are free. Messages name the dataset and what was expected.
  at::Tensor read_tensor(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape,
                         bool allow_integer = false) const;
  std::vector<int64_t> dataset_shape(const std::string& name) const;
  std::string dataset_type_name(const std::string& name) const;   // "float64", "int32", ...

 private:
  Handle handle_;
  std::string file_;
  std::string path_;
};

enum class Mode { read, read_write, create };   // create truncates

class File : public Location {
 public:
  // Opening a missing or non-HDF5 file throws InputError naming it.
  File(const std::string& path, Mode mode);
  void flush() const;   // H5Fflush(global): what is written so far survives a kill
};

// Extendible datasets: the row-by-row append used by the writers that flush as they go (sample
// trajectories, NLL results; docs/formats.md). Creates dataset `name` in `location` with shape
// [0, row_shape...] and max shape [unlimited, row_shape...] (an axis of row_shape that is 0 is unlimited
// too: HDF5 needs a positive chunk extent within the maximum), chunked [rows_per_chunk, row_shape...] with
// the row_shape axes shortened, leading first, until a chunk holds at most 1 MiB, and deflate level 4.
// `dtype` picks the stored (little-endian) type: float64, float32, int64, int32, int16, int8 or uint8.
Handle create_extendible(const Location& location, const std::string& name, at::ScalarType dtype,
                         const std::vector<int64_t>& row_shape, int64_t rows_per_chunk);
// Sets the first-axis extent of the extendible `dataset` to first_row + k and writes `rows` ([k, row_shape...],
// any device and dtype, converted to the stored type) as its rows first_row .. first_row + k - 1. Writing at
// the current length appends; writing again at the same first_row after a failure redoes the same rows.
// `what` names the dataset in messages ("file.h5:/group/name").
void write_rows(const Handle& dataset, const std::string& what, int64_t first_row, const at::Tensor& rows);

// Writes a whole file so that `path` is never a partial file: `write` fills a new file `<path>.tmp-<pid>-<n>`
// next to the target (same file system), which is flushed, closed and renamed over `path`; on any exception the
// temporary file is removed and the exception propagates (an existing `path` is untouched). IoError if the
// rename fails.
void write_atomically(const std::string& path, const std::function<void(const File&)>& write);

// Silences HDF5's own error stack printing for the lifetime of the process (errors become exceptions).
void silence_library_errors();

}  // namespace sdeflow::h5
