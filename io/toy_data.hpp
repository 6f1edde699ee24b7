#pragma once
// Seeded generators for the 2-D toy densities of the flow and diffusion literature (FFJORD, RealNVP and
// score-based-model papers): checkerboard, 8gaussians, 2spirals, moons, pinwheel, rings, swissroll. Each
// definition (and the statistics the tests check) is written down in docs/datasets.md.
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace sdeflow {

std::vector<std::string> toy_data_names();
bool is_toy_data(const std::string& name);
// n samples [n, 2], float64 on the CPU, drawn from `generator` (a CPU generator) only: same seed, same samples.
// InputError for an unknown name (listing the known ones) or n < 1.
at::Tensor sample_toy_data(const std::string& name, int64_t n, at::Generator& generator);

}  // namespace sdeflow
