// The HDF5 layer (io/h5.hpp): RAII handles, locations (files and groups), attributes, and tensors <->
// datasets. Existence is always checked (H5Lexists / H5Aexists) before an object is opened, so that a
// missing object is an InputError and never an HDF5 error stack; calls that can still fail for reasons
// outside the caller's control (opening, creating, writing) run with HDF5's automatic error printing
// switched off and report the library's own explanation in the IoError message.
#include "io/h5.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <utility>

#include "core/error.hpp"
#include "io/output_path.hpp"

namespace sdeflow::h5 {

namespace {

// Switches HDF5's automatic error-stack printing off for one scope (restored afterwards).
class QuietErrors {
 public:
  QuietErrors() {
    if (H5Eget_auto2(H5E_DEFAULT, &func_, &data_) >= 0) {
      saved_ = true;
      H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
  }
  ~QuietErrors() {
    if (saved_) H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
  bool saved_ = false;
};

// The most specific description on HDF5's current error stack ("" if none), for IoError messages.
std::string library_error() {
  std::string description;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* error, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (n == 0 && error != nullptr && error->desc != nullptr) *out = error->desc;
        return 0;
      },
      &description);
  return description.empty() ? std::string() : " (" + description + ")";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += shape[i] < 0 ? std::string("*") : std::to_string(shape[i]);
  }
  return out + "]";
}

// Splits "a/b/c" (or "/a/b") into the prefixes "a", "a/b", "a/b/c" (or "/a", "/a/b").
std::vector<std::string> link_prefixes(const std::string& name) {
  std::vector<std::string> prefixes;
  std::string current = !name.empty() && name.front() == '/' ? "/" : "";
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (end > start) {
      if (!current.empty() && current.back() != '/') current += '/';
      current += name.substr(start, end - start);
      prefixes.push_back(current);
    }
    start = end + 1;
  }
  return prefixes;
}

// Whether `name` (relative to `loc`, possibly nested) resolves to an object, checked one link at a
// time so that a missing intermediate group is "no" and not an HDF5 error.
bool object_exists(hid_t loc, const std::string& name) {
  const std::vector<std::string> prefixes = link_prefixes(name);
  if (prefixes.empty()) return false;
  QuietErrors quiet;   // an odd name (".", "..") makes H5Lexists fail rather than answer
  for (const std::string& prefix : prefixes) {
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (H5Oexists_by_name(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;   // dangling link
  }
  return true;
}

// A link creation property list that creates missing intermediate groups ("a/b" creates "a").
Handle intermediate_groups_lcpl() {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  if (lcpl.valid()) H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

std::string type_name(hid_t type) {
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_FLOAT: return "float" + std::to_string(bits);
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_STRING: return H5Tis_variable_str(type) > 0 ? "variable-length string" : "fixed-length string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    case H5T_TIME: return "time";
    default: return "unknown type";
  }
}

// How a stored element type is read: the HDF5 memory type and the tensor dtype it lands in.
struct ReadType {
  hid_t memory_type;
  at::ScalarType dtype;
};

std::optional<ReadType> read_type_for(hid_t type) {
  const size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      if (size == 8) return ReadType{H5T_NATIVE_DOUBLE, at::kDouble};
      if (size == 4) return ReadType{H5T_NATIVE_FLOAT, at::kFloat};
      return std::nullopt;
    case H5T_INTEGER:
      if (H5Tget_sign(type) == H5T_SGN_NONE) {
        if (size == 1) return ReadType{H5T_NATIVE_UINT8, at::kByte};
        if (size == 2) return ReadType{H5T_NATIVE_INT32, at::kInt};    // widened: torch has no uint16
        if (size == 4) return ReadType{H5T_NATIVE_INT64, at::kLong};   // widened: torch has no uint32
        return std::nullopt;                                            // uint64 does not fit int64
      }
      if (size == 1) return ReadType{H5T_NATIVE_INT8, at::kChar};
      if (size == 2) return ReadType{H5T_NATIVE_INT16, at::kShort};
      if (size == 4) return ReadType{H5T_NATIVE_INT32, at::kInt};
      if (size == 8) return ReadType{H5T_NATIVE_INT64, at::kLong};
      return std::nullopt;
    default: return std::nullopt;
  }
}

// How a tensor is written: the (little-endian) file type and the matching native memory type.
struct WriteType {
  hid_t file_type;
  hid_t memory_type;
};

std::optional<WriteType> write_type_for(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble: return WriteType{H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE};
    case at::kFloat: return WriteType{H5T_IEEE_F32LE, H5T_NATIVE_FLOAT};
    case at::kLong: return WriteType{H5T_STD_I64LE, H5T_NATIVE_INT64};
    case at::kInt: return WriteType{H5T_STD_I32LE, H5T_NATIVE_INT32};
    case at::kShort: return WriteType{H5T_STD_I16LE, H5T_NATIVE_INT16};
    case at::kChar: return WriteType{H5T_STD_I8LE, H5T_NATIVE_INT8};
    case at::kByte: return WriteType{H5T_STD_U8LE, H5T_NATIVE_UINT8};
    default: return std::nullopt;
  }
}

std::vector<int64_t> dataspace_shape(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank <= 0) return {};
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// Chunk dimensions for a dataset of shape `dims` with `element_size`-byte elements: the whole extent,
// reduced along the leading axes until a chunk holds at most `target_bytes`.
std::vector<hsize_t> capped_chunk(const std::vector<hsize_t>& dims, size_t element_size,
                                  size_t target_bytes = size_t{1} << 20) {
  std::vector<hsize_t> chunk(dims.size());
  size_t bytes = element_size;
  for (size_t i = 0; i < dims.size(); ++i) {
    chunk[i] = std::max<hsize_t>(dims[i], 1);
    bytes *= chunk[i];
  }
  for (size_t i = 0; i < chunk.size() && bytes > target_bytes; ++i) {
    const size_t inner = bytes / chunk[i];
    chunk[i] = std::max<hsize_t>(1, target_bytes / inner);
    bytes = inner * chunk[i];
  }
  return chunk;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Handle

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    Handle old(id_);   // closes the current identifier
    id_ = other.id_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

Handle::~Handle() {
  if (id_ < 0) return;
  if (H5Iis_valid(id_) <= 0) return;
  QuietErrors quiet;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: H5Idec_ref(id_); break;
  }
}

// ---------------------------------------------------------------------------------------------------
// Location: names and structure

std::string Location::describe(const std::string& child) const {
  std::string full;
  if (child.empty()) full = path_;
  else if (child.front() == '/') full = child;
  else if (!path_.empty() && path_.back() == '/') full = path_ + child;
  else full = path_ + "/" + child;
  return file_ + ":" + full;
}

bool Location::has(const std::string& name) const { return object_exists(id(), name); }

bool Location::has_attribute(const std::string& name) const {
  QuietErrors quiet;
  return H5Aexists(id(), name.c_str()) > 0;
}

Location Location::group(const std::string& name) const {
  if (!has(name)) throw InputError(describe(name) + ": no such group");
  Handle object(H5Oopen(id(), name.c_str(), H5P_DEFAULT));
  if (!object.valid()) throw IoError(describe(name) + ": cannot open" + library_error());
  if (H5Iget_type(object.get()) != H5I_GROUP) throw InputError(describe(name) + ": is not a group");
  const std::string full = describe(name).substr(file_.size() + 1);
  return Location(std::move(object), file_, full);
}

// Creates group `name` (and missing intermediate groups); an existing group of that name is opened.
Location Location::create_group(const std::string& name) const {
  if (has(name)) return group(name);
  QuietErrors quiet;
  Handle lcpl = intermediate_groups_lcpl();
  Handle created(H5Gcreate2(id(), name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!created.valid()) throw IoError(describe(name) + ": cannot create group" + library_error());
  const std::string full = describe(name).substr(file_.size() + 1);
  return Location(std::move(created), file_, full);
}

std::vector<std::string> Location::attribute_names() const {
  std::vector<std::string> names;
  hsize_t index = 0;
  const herr_t status = H5Aiterate2(
      id(), H5_INDEX_NAME, H5_ITER_INC, &index,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (status < 0) throw IoError(describe() + ": cannot list attributes" + library_error());
  return names;
}

std::vector<std::string> Location::children() const {
  std::vector<std::string> names;
  hsize_t index = 0;
  const herr_t status = H5Literate(
      id(), H5_INDEX_NAME, H5_ITER_INC, &index,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (status < 0) throw IoError(describe() + ": cannot list members" + library_error());
  return names;
}

// ---------------------------------------------------------------------------------------------------
// Attributes

namespace {

// Deletes attribute `name` if present, then creates it with `type` and `space` and writes `data`.
void write_attribute(const Location& loc, const std::string& name, hid_t file_type, hid_t memory_type,
                     hid_t space, const void* data) {
  QuietErrors quiet;
  const std::string what = loc.describe() + " attribute '" + name + "'";
  if (H5Aexists(loc.id(), name.c_str()) > 0 && H5Adelete(loc.id(), name.c_str()) < 0) {
    throw IoError(what + ": cannot replace" + library_error());
  }
  Handle attribute(H5Acreate2(loc.id(), name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attribute.valid()) throw IoError(what + ": cannot create" + library_error());
  if (H5Awrite(attribute.get(), memory_type, data) < 0) throw IoError(what + ": cannot write" + library_error());
}

std::string attribute_label(const Location& loc, const std::string& name) {
  return loc.describe() + " attribute '" + name + "'";
}

Handle open_attribute(const Location& loc, const std::string& name) {
  if (!loc.has_attribute(name)) throw InputError(attribute_label(loc, name) + ": no such attribute");
  Handle attribute(H5Aopen(loc.id(), name.c_str(), H5P_DEFAULT));
  if (!attribute.valid()) throw IoError(attribute_label(loc, name) + ": cannot open" + library_error());
  return attribute;
}

hssize_t attribute_points(const Handle& attribute) {
  Handle space(H5Aget_space(attribute.get()));
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) return 0;
  return H5Sget_simple_extent_npoints(space.get());
}

int attribute_rank(const Handle& attribute) {
  Handle space(H5Aget_space(attribute.get()));
  return H5Sget_simple_extent_ndims(space.get());
}

// Reads a single numeric element converted to `memory_type`; class must be one of `classes`.
template <typename T>
T read_number(const Location& loc, const std::string& name, hid_t memory_type, bool accept_float,
              const char* expected) {
  Handle attribute = open_attribute(loc, name);
  Handle type(H5Aget_type(attribute.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (!(cls == H5T_INTEGER || (accept_float && cls == H5T_FLOAT))) {
    throw InputError(attribute_label(loc, name) + ": expected " + expected + ", got " + type_name(type.get()));
  }
  const hssize_t points = attribute_points(attribute);
  if (points != 1) {
    throw InputError(attribute_label(loc, name) + ": expected a single value, got " + std::to_string(points));
  }
  T value{};
  QuietErrors quiet;
  if (H5Aread(attribute.get(), memory_type, &value) < 0) {
    throw IoError(attribute_label(loc, name) + ": cannot read" + library_error());
  }
  return value;
}

}  // namespace

// Strings are stored as fixed-length, null-terminated UTF-8 of size len + 1 (an empty string has size 1).
void Location::set_attribute(const std::string& name, const std::string& value) const {
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR));
  write_attribute(*this, name, type.get(), type.get(), space.get(), value.c_str());
}

void Location::set_attribute(const std::string& name, int64_t value) const {
  Handle space(H5Screate(H5S_SCALAR));
  write_attribute(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), &value);
}

void Location::set_attribute(const std::string& name, double value) const {
  Handle space(H5Screate(H5S_SCALAR));
  write_attribute(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), &value);
}

void Location::set_attribute(const std::string& name, const std::vector<double>& value) const {
  const hsize_t dims[1] = {static_cast<hsize_t>(value.size())};
  Handle space(H5Screate_simple(1, dims, nullptr));
  const double none = 0.0;   // HDF5 rejects a null buffer even for zero elements
  write_attribute(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), value.empty() ? &none : value.data());
}

void Location::set_attribute(const std::string& name, const std::vector<int64_t>& value) const {
  const hsize_t dims[1] = {static_cast<hsize_t>(value.size())};
  Handle space(H5Screate_simple(1, dims, nullptr));
  const int64_t none = 0;
  write_attribute(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), value.empty() ? &none : value.data());
}

// Accepts fixed-length (any padding) and variable-length strings, scalar or a single element.
std::string Location::attribute_string(const std::string& name) const {
  Handle attribute = open_attribute(*this, name);
  Handle type(H5Aget_type(attribute.get()));
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw InputError(attribute_label(*this, name) + ": expected a string, got " + type_name(type.get()));
  }
  const hssize_t points = attribute_points(attribute);
  if (points != 1) {
    throw InputError(attribute_label(*this, name) + ": expected a single string, got " + std::to_string(points));
  }
  QuietErrors quiet;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory(H5Tcopy(H5T_C_S1));
    H5Tset_size(memory.get(), H5T_VARIABLE);
    H5Tset_cset(memory.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(attribute.get(), memory.get(), &text) < 0) {
      throw IoError(attribute_label(*this, name) + ": cannot read" + library_error());
    }
    std::string value = text != nullptr ? std::string(text) : std::string();
    if (text != nullptr) H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(type.get());
  std::string buffer(size + 1, '\0');
  if (H5Aread(attribute.get(), type.get(), buffer.data()) < 0) {
    throw IoError(attribute_label(*this, name) + ": cannot read" + library_error());
  }
  buffer.resize(size);
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    buffer.erase(buffer.find_last_not_of(' ') + 1);
  } else {
    buffer.resize(std::min(buffer.find('\0'), buffer.size()));
  }
  return buffer;
}

int64_t Location::attribute_int(const std::string& name) const {
  return read_number<int64_t>(*this, name, H5T_NATIVE_INT64, false, "an integer");
}

double Location::attribute_double(const std::string& name) const {
  return read_number<double>(*this, name, H5T_NATIVE_DOUBLE, true, "a number");
}

// A scalar or 1-D numeric attribute as doubles.
std::vector<double> Location::attribute_doubles(const std::string& name) const {
  Handle attribute = open_attribute(*this, name);
  Handle type(H5Aget_type(attribute.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    throw InputError(attribute_label(*this, name) + ": expected numbers, got " + type_name(type.get()));
  }
  const int rank = attribute_rank(attribute);
  if (rank > 1) {
    throw InputError(attribute_label(*this, name) + ": expected a 1-D array, got " + std::to_string(rank) +
                     " dimensions");
  }
  std::vector<double> values(static_cast<size_t>(std::max<hssize_t>(attribute_points(attribute), 0)));
  if (values.empty()) return values;
  QuietErrors quiet;
  if (H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
    throw IoError(attribute_label(*this, name) + ": cannot read" + library_error());
  }
  return values;
}

std::vector<int64_t> Location::attribute_ints(const std::string& name) const {
  Handle attribute = open_attribute(*this, name);
  Handle type(H5Aget_type(attribute.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER) {
    throw InputError(attribute_label(*this, name) + ": expected integers, got " + type_name(type.get()));
  }
  const int rank = attribute_rank(attribute);
  if (rank > 1) {
    throw InputError(attribute_label(*this, name) + ": expected a 1-D array, got " + std::to_string(rank) +
                     " dimensions");
  }
  std::vector<int64_t> values(static_cast<size_t>(std::max<hssize_t>(attribute_points(attribute), 0)));
  if (values.empty()) return values;
  QuietErrors quiet;
  if (H5Aread(attribute.get(), H5T_NATIVE_INT64, values.data()) < 0) {
    throw IoError(attribute_label(*this, name) + ": cannot read" + library_error());
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------
// Datasets

namespace {

Handle open_dataset(const Location& loc, const std::string& name) {
  if (!loc.has(name)) throw InputError(loc.describe(name) + ": no such dataset");
  QuietErrors quiet;
  Handle object(H5Oopen(loc.id(), name.c_str(), H5P_DEFAULT));
  if (!object.valid()) throw IoError(loc.describe(name) + ": cannot open" + library_error());
  if (H5Iget_type(object.get()) != H5I_DATASET) throw InputError(loc.describe(name) + ": is not a dataset");
  return object;
}

}  // namespace

void Location::write_tensor(const std::string& name, const at::Tensor& tensor, bool compress) const {
  at::Tensor data = tensor.to(at::kCPU);
  if (data.scalar_type() == at::kBool) data = data.to(at::kByte);
  data = data.contiguous();
  const std::optional<WriteType> types = write_type_for(data.scalar_type());
  if (!types) {
    throw InputError(describe(name) + ": cannot store tensors of type " +
                     std::string(c10::toString(data.scalar_type())));
  }

  QuietErrors quiet;
  if (has(name) && H5Ldelete(id(), name.c_str(), H5P_DEFAULT) < 0) {
    throw IoError(describe(name) + ": cannot replace" + library_error());
  }
  std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  if (!space.valid()) throw IoError(describe(name) + ": cannot create dataspace" + library_error());

  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (compress && !dims.empty() && data.numel() > 0) {
    const std::vector<hsize_t> chunk = capped_chunk(dims, data.element_size());
    if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
        H5Pset_deflate(dcpl.get(), 4) < 0) {
      throw IoError(describe(name) + ": cannot set up compression" + library_error());
    }
  }
  Handle lcpl = intermediate_groups_lcpl();
  Handle dataset(H5Dcreate2(id(), name.c_str(), types->file_type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT));
  if (!dataset.valid()) throw IoError(describe(name) + ": cannot create dataset" + library_error());
  if (data.numel() > 0 &&
      H5Dwrite(dataset.get(), types->memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()) < 0) {
    throw IoError(describe(name) + ": cannot write dataset" + library_error());
  }
}

at::Tensor Location::read_tensor(const std::string& name) const {
  Handle dataset = open_dataset(*this, name);
  Handle type(H5Dget_type(dataset.get()));
  const std::optional<ReadType> read = read_type_for(type.get());
  if (!read) throw InputError(describe(name) + ": unsupported element type " + type_name(type.get()));
  Handle space(H5Dget_space(dataset.get()));
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) {
    throw InputError(describe(name) + ": dataset has no dataspace (H5S_NULL)");
  }
  const std::vector<int64_t> shape = dataspace_shape(space.get());
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(read->dtype));
  if (out.numel() == 0) return out;
  QuietErrors quiet;
  if (H5Dread(dataset.get(), read->memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) < 0) {
    throw IoError(describe(name) + ": cannot read dataset" + library_error());
  }
  return out;
}

at::Tensor Location::read_tensor(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape,
                                 bool allow_integer) const {
  {
    Handle dataset = open_dataset(*this, name);
    Handle type(H5Dget_type(dataset.get()));
    const H5T_class_t cls = H5Tget_class(type.get());
    if (!(cls == H5T_FLOAT || (allow_integer && cls == H5T_INTEGER))) {
      throw InputError(describe(name) + ": expected " +
                       (allow_integer ? "a numeric dataset" : "a floating-point dataset") + ", got " +
                       type_name(type.get()));
    }
    Handle space(H5Dget_space(dataset.get()));
    const std::vector<int64_t> stored = dataspace_shape(space.get());
    bool matches = stored.size() == shape.size();
    for (size_t i = 0; matches && i < shape.size(); ++i) matches = shape[i] < 0 || shape[i] == stored[i];
    if (!matches) {
      std::string message = describe(name) + ": expected shape " + shape_string(shape) + ", got " + shape_string(stored);
      if (stored.size() != shape.size()) {
        message += " (rank " + std::to_string(stored.size()) + " instead of " + std::to_string(shape.size()) + ")";
      }
      throw InputError(message);
    }
  }
  return read_tensor(name).to(dtype);
}

std::vector<int64_t> Location::dataset_shape(const std::string& name) const {
  Handle dataset = open_dataset(*this, name);
  Handle space(H5Dget_space(dataset.get()));
  return dataspace_shape(space.get());
}

std::string Location::dataset_type_name(const std::string& name) const {
  Handle dataset = open_dataset(*this, name);
  Handle type(H5Dget_type(dataset.get()));
  return type_name(type.get());
}

// ---------------------------------------------------------------------------------------------------
// File

namespace {

Handle open_file(const std::string& path, Mode mode) {
  QuietErrors quiet;
  if (mode == Mode::create) {
    check_output_path(path);
    Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file.valid()) throw IoError(path + ": cannot create HDF5 file" + library_error());
    return file;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": not an HDF5 file (a directory)");
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_hdf5 <= 0) throw InputError(path + ": not an HDF5 file");
  Handle file(H5Fopen(path.c_str(), mode == Mode::read ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT));
  if (!file.valid()) throw IoError(path + ": cannot open HDF5 file" + library_error());
  return file;
}

}  // namespace

File::File(const std::string& path, Mode mode) : Location(open_file(path, mode), path, "/") {}

void File::flush() const {
  QuietErrors quiet;
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) throw IoError(file() + ": cannot flush" + library_error());
}

// ---------------------------------------------------------------------------------------------------
// Extendible datasets

namespace {
constexpr size_t kExtendibleChunkBytes = size_t{1} << 20;   // chunks hold at most ~1 MiB (rows_per_chunk aside)
}  // namespace

Handle create_extendible(const Location& location, const std::string& name, at::ScalarType dtype,
                         const std::vector<int64_t>& row_shape, int64_t rows_per_chunk) {
  const std::optional<WriteType> types = write_type_for(dtype);
  if (!types) {
    throw InputError(location.describe(name) + ": cannot store tensors of type " + std::string(c10::toString(dtype)));
  }
  std::vector<hsize_t> dims{0};
  std::vector<hsize_t> maxdims{H5S_UNLIMITED};
  std::vector<hsize_t> chunk{static_cast<hsize_t>(std::max<int64_t>(rows_per_chunk, 1))};
  size_t bytes = c10::elementSize(dtype);
  for (int64_t extent64 : row_shape) {
    const hsize_t extent = static_cast<hsize_t>(std::max<int64_t>(extent64, 0));
    dims.push_back(extent);
    // An empty axis cannot have a chunk extent within its maximum, so it is made unlimited too.
    maxdims.push_back(extent == 0 ? H5S_UNLIMITED : extent);
    chunk.push_back(std::max<hsize_t>(extent, 1));
    bytes *= chunk.back();
  }
  // The first axis keeps rows_per_chunk; the others are shortened, leading first, down to the byte budget.
  for (size_t i = 1; i < chunk.size() && bytes > kExtendibleChunkBytes; ++i) {
    const size_t inner = bytes / chunk[i];
    chunk[i] = std::max<hsize_t>(1, kExtendibleChunkBytes / inner);
    bytes = inner * chunk[i];
  }
  QuietErrors quiet;
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
      H5Pset_deflate(dcpl.get(), 4) < 0) {
    throw IoError(location.describe(name) + ": cannot set up an extendible dataset" + library_error());
  }
  Handle dataset(
      H5Dcreate2(location.id(), name.c_str(), types->file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!dataset.valid()) throw IoError(location.describe(name) + ": cannot create dataset" + library_error());
  return dataset;
}

void write_rows(const Handle& dataset, const std::string& what, int64_t first_row, const at::Tensor& rows) {
  if (!dataset.valid()) throw IoError(what + ": the dataset is not open");
  if (first_row < 0) throw IoError(what + ": negative first row " + std::to_string(first_row));
  std::optional<ReadType> stored;
  std::vector<hsize_t> dims;
  {
    QuietErrors quiet;
    Handle type(H5Dget_type(dataset.get()));
    if (type.valid()) stored = read_type_for(type.get());
    Handle space(H5Dget_space(dataset.get()));
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 1) throw IoError(what + ": cannot read the dataset's extent");
    dims.resize(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  }
  if (!stored) throw IoError(what + ": cannot determine the dataset's element type");

  // The rows must be [k, row_shape...] with the dataset's row shape.
  bool matches = rows.dim() == static_cast<int64_t>(dims.size());
  for (size_t i = 1; matches && i < dims.size(); ++i) {
    matches = rows.size(static_cast<int64_t>(i)) == static_cast<int64_t>(dims[i]);
  }
  if (!matches) {
    std::vector<int64_t> expected(dims.begin(), dims.end());
    expected[0] = -1;
    throw InputError(what + ": expected rows of shape " + shape_string(expected) + ", got " +
                     shape_string(rows.sizes().vec()));
  }
  const at::Tensor data = rows.to(at::kCPU).to(stored->dtype).contiguous();

  QuietErrors quiet;
  dims[0] = static_cast<hsize_t>(first_row + rows.size(0));
  if (H5Dset_extent(dataset.get(), dims.data()) < 0) {
    throw IoError(what + ": cannot extend the dataset" + library_error());
  }
  if (data.numel() == 0) return;

  Handle file_space(H5Dget_space(dataset.get()));
  std::vector<hsize_t> start(dims.size(), 0);
  std::vector<hsize_t> count = dims;
  start[0] = static_cast<hsize_t>(first_row);
  count[0] = static_cast<hsize_t>(rows.size(0));
  if (!file_space.valid() ||
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0) {
    throw IoError(what + ": cannot select the new rows" + library_error());
  }
  Handle memory_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  if (H5Dwrite(dataset.get(), stored->memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT,
               data.data_ptr()) < 0) {
    throw IoError(what + ": cannot write the new rows" + library_error());
  }
}

void silence_library_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void write_atomically(const std::string& path, const std::function<void(const File&)>& write) {
  check_output_path(path);   // named as the target, before any temporary file exists
  // Unique per process and call, so concurrent writers (threads, processes) never share a temporary file.
  static std::atomic<uint64_t> counter{0};
  const std::string temporary =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  try {
    {
      File file(temporary, Mode::create);
      write(file);
      file.flush();
    }   // closed before the rename
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) throw IoError(path + ": cannot move the written file into place (" + error.message() + ")");
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

}  // namespace sdeflow::h5
