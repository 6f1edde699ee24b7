// Device, dtype and generator helpers.
#include "core/device.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <torch/cuda.h>

#include "core/error.hpp"

namespace sdeflow {

bool cuda_available() { return torch::cuda::is_available(); }

at::Device parse_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!cuda_available()) throw InputError("--device " + name + ": no CUDA device is available on this machine");
    try {
      at::Device device(name == "cuda" ? std::string("cuda:0") : name);
      if (device.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw InputError("--device " + name + ": no such CUDA device");
      }
      return device;
    } catch (const c10::Error&) {
      throw InputError("--device " + name + ": not a device (use cpu, cuda, cuda:N or auto)");
    }
  }
  throw InputError("--device " + name + ": not a device (use cpu, cuda, cuda:N or auto)");
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float64" || name == "double") return at::kDouble;
  if (name == "float32" || name == "float") return at::kFloat;
  throw InputError("--dtype " + name + ": not a dtype (use float64 or float32)");
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return "float64";
    case at::kFloat: return "float32";
    default: return c10::toString(type);
  }
}

at::Generator make_generator(const at::Device& device, uint64_t seed) {
  at::Generator generator = device.is_cuda() ? at::cuda::detail::createCUDAGenerator(device.index())
                                             : at::detail::createCPUGenerator(seed);
  generator.set_current_seed(seed);
  return generator;
}

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace sdeflow
