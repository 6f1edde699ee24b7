#pragma once
// Device and dtype selection from user strings, and seeded generators per device (no global RNG state:
// same seed + same device + same build => identical numbers).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace sdeflow {

// "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU). InputError if CUDA is asked for
// and none is available, naming the option.
at::Device parse_device(const std::string& name);
// "float64" | "float32" (also "double" | "float").
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType type);
bool cuda_available();
at::Generator make_generator(const at::Device& device, uint64_t seed);

// glibc gives blocks above 128 KiB back to the system on every free, so each tensor operation on a few
// hundred KiB page-faults fresh memory (measured: 1.5-2x the time of a 1000-row likelihood solve). Raises
// the mmap and trim thresholds so freed memory is reused. Process-wide: the CLI and benchmarks call it;
// a library user decides for their own program. No-op off glibc.
void keep_freed_memory_for_reuse();

}  // namespace sdeflow
