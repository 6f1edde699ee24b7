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

}  // namespace sdeflow
