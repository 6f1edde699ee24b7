// NLL result files (io/nll_file.hpp, docs/formats.md "NLL result files"). Each batch extends the four
// datasets by its rows (h5::write_rows at row `rows`), then updates the `rows` attribute and flushes the
// whole file, so that a process killed between batches leaves a file holding every completed batch.
#include "io/nll_file.hpp"

#include <array>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace sdeflow {

namespace {

constexpr const char* kNllFormat = "sdeflow.nll";
constexpr int64_t kNllVersion = 1;
// One chunk holds 1024 rows (8 KiB of float64): small enough that rewriting the last, partly filled chunk
// on every append is cheap, large enough to keep the chunk index small.
constexpr int64_t kRowsPerChunk = 1024;
constexpr std::array<const char*, 4> kReserved{"format", "version", "complete", "rows"};

bool is_reserved(const std::string& name) {
  for (const char* reserved : kReserved) {
    if (name == reserved) return true;
  }
  return false;
}

}  // namespace

NllFileWriter::NllFileWriter(const std::string& path, const std::map<std::string, std::string>& attributes,
                             ResultFile::OnFailure on_failure)
    : path_(path), result_(std::make_unique<ResultFile>(path, kNllFormat, kNllVersion, attributes, on_failure)),
      file_(&result_->file()) {
  // The format's own attributes are written after `attributes` so that they cannot be overridden.
  file_->set_attribute("rows", int64_t{0});
  nll_ = h5::create_extendible(*file_, "nll", at::kDouble, {}, kRowsPerChunk);
  bpd_ = h5::create_extendible(*file_, "bpd", at::kDouble, {}, kRowsPerChunk);
  nfe_ = h5::create_extendible(*file_, "nfe", at::kLong, {}, kRowsPerChunk);
  status_ = h5::create_extendible(*file_, "status", at::kInt, {}, kRowsPerChunk);
  file_->flush();
}

NllFileWriter::~NllFileWriter() {
  // Every batch has been flushed already; closing must not throw. Uncommitted: kept or removed (on_failure).
  close();
  result_.reset();
}

void NllFileWriter::close() {
  nll_ = h5::Handle();
  bpd_ = h5::Handle();
  nfe_ = h5::Handle();
  status_ = h5::Handle();
  file_ = nullptr;
}

void NllFileWriter::append(const at::Tensor& nll, const at::Tensor& bpd, const at::Tensor& nfe,
                           const at::Tensor& status) {
  if (finished_ || !file_) throw Error(path_ + ": append after the NLL file was finished");
  const std::array<std::pair<const char*, const at::Tensor*>, 4> columns{
      {{"nll", &nll}, {"bpd", &bpd}, {"nfe", &nfe}, {"status", &status}}};
  const int64_t batch = nll.dim() == 1 ? nll.size(0) : -1;
  for (const auto& [name, tensor] : columns) {
    if (tensor->dim() != 1 || tensor->size(0) != batch) {
      throw InputError(path_ + ":/" + name + ": expected a 1-D batch" +
                       (batch >= 0 ? " of " + std::to_string(batch) + " values like /nll" : std::string()) +
                       ", got shape " + shape_text(tensor->sizes()));
    }
  }
  // All four datasets get rows rows_ .. rows_ + batch - 1; after a failure the next append rewrites them.
  h5::write_rows(nll_, file_->describe("nll"), rows_, nll);
  h5::write_rows(bpd_, file_->describe("bpd"), rows_, bpd);
  h5::write_rows(nfe_, file_->describe("nfe"), rows_, nfe);
  h5::write_rows(status_, file_->describe("status"), rows_, status);
  file_->set_attribute("rows", rows_ + batch);
  rows_ += batch;
  file_->flush();
}

void NllFileWriter::finish(const std::map<std::string, double>& summary) {
  if (finished_ || !file_) throw Error(path_ + ": finish called twice");
  for (const auto& [name, value] : summary) {
    if (is_reserved(name)) throw Error(path_ + ": '" + name + "' is a reserved attribute, not a summary name");
  }
  finished_ = true;
  // Close everything so that the file can be reopened (by this or another process) at once.
  close();
  result_->commit(summary);
}

// ---------------------------------------------------------------------------------------------------
// Reading

namespace {

// Dataset `name` as a 1-D tensor of `dtype` with its first `rows` entries (see read_nll_file for the rule
// on longer datasets). `integer`: the stored type must be an integer type, else floating point.
at::Tensor read_column(const h5::File& file, const std::string& name, at::ScalarType dtype, bool integer,
                       int64_t rows, bool complete) {
  const std::string what = file.describe(name);
  if (!file.has(name)) throw InputError(what + ": no such dataset");
  const std::string type = file.dataset_type_name(name);
  const bool is_integer = type.rfind("int", 0) == 0 || type.rfind("uint", 0) == 0;
  const bool type_ok = integer ? is_integer : type.rfind("float", 0) == 0;
  if (!type_ok) {
    throw InputError(what + ": expected " + (integer ? "an integer type" : "floating-point values") + ", got " + type);
  }
  const std::vector<int64_t> shape = file.dataset_shape(name);
  if (shape.size() != 1) {
    throw InputError(what + ": expected a 1-D dataset, got " + std::to_string(shape.size()) + " dimension(s)");
  }
  const int64_t length = shape[0];
  if (length < rows || (complete && length != rows)) {
    throw InputError(what + ": has " + std::to_string(length) + " entries but the file's 'rows' attribute is " +
                     std::to_string(rows));
  }
  at::Tensor values = file.read_tensor(name).to(dtype);
  return values.narrow(0, 0, rows).contiguous();
}

NllFile read_checked(const std::string& path) {
  const h5::File file(path, h5::Mode::read);
  const auto require = [&](const char* attribute) {
    if (!file.has_attribute(attribute)) {
      throw InputError(file.describe() + ": missing root attribute '" + attribute + "' (not an sdeflow NLL file?)");
    }
  };
  require("format");   // checked first: the most telling message for another kind of file
  const std::string format = file.attribute_string("format");
  if (format != kNllFormat) {
    throw InputError(file.describe() + ": format is '" + format + "', expected '" + kNllFormat + "'");
  }
  for (const char* attribute : kReserved) require(attribute);
  const int64_t version = file.attribute_int("version");
  if (version != kNllVersion) {
    throw InputError(file.describe() + ": unsupported version " + std::to_string(version) + " (this build reads " +
                     std::to_string(kNllVersion) + ")");
  }
  const int64_t complete = file.attribute_int("complete");
  if (complete != 0 && complete != 1) {
    throw InputError(file.describe() + ": attribute 'complete' is " + std::to_string(complete) + ", expected 0 or 1");
  }
  NllFile result;
  result.complete = complete == 1;
  result.rows = file.attribute_int("rows");
  if (result.rows < 0) {
    throw InputError(file.describe() + ": attribute 'rows' is " + std::to_string(result.rows) + ", expected >= 0");
  }
  result.nll = read_column(file, "nll", at::kDouble, false, result.rows, result.complete);
  result.bpd = read_column(file, "bpd", at::kDouble, false, result.rows, result.complete);
  result.nfe = read_column(file, "nfe", at::kLong, true, result.rows, result.complete);
  result.status = read_column(file, "status", at::kInt, true, result.rows, result.complete);

  // Other root attributes: strings describe the run, numbers are the summary; anything else (arrays written
  // by another tool) is skipped.
  for (const std::string& name : file.attribute_names()) {
    if (is_reserved(name)) continue;
    try {
      result.attributes[name] = file.attribute_string(name);
      continue;
    } catch (const InputError&) {
    }
    try {
      result.summary[name] = file.attribute_double(name);
    } catch (const InputError&) {
    }
  }
  return result;
}

}  // namespace

NllFile read_nll_file(const std::string& path) {
  try {
    return read_checked(path);
  } catch (const IoError& error) {
    // The library could not read what looked like an HDF5 file (truncated, corrupt): a bad input file.
    throw InputError(error.what());
  }
}

}  // namespace sdeflow
