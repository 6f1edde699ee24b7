// The 2-D toy densities of the flow and diffusion literature (io/toy_data.hpp). Each generator is written
// from its definition in docs/datasets.md ("Toy data sets"), where U ~ U[0, 1) and Z ~ N(0, 1) are independent
// draws from the caller's generator and the statistics the tests check are derived:
//   checkerboard  column i ~ {-2..1}, row j ~ the two of {-2..1} with i + j even;  x = 2 (i + U, j + U')
//   8gaussians    k ~ {0..7};  x = 2 sqrt2 (cos k pi/4, sin k pi/4) + (sqrt2 / 4) Z
//   2spirals      theta = 3 pi sqrt(U), s = +-1;  x = s (-theta cos theta + U/2, theta sin theta + U'/2) / 3 + 0.1 Z
//   moons         t = pi U;  m = (cos t, sin t) or (1 - cos t, 1/2 - sin t) w.p. 1/2 each; x = 2 (m + 0.1 Z) - (1, 0.2)
//   pinwheel      k ~ {0..4}, a = 1 + 0.3 Z, b = 0.1 Z', alpha = 2 pi k / 5 + e^a / 4;  x = 2 R(-alpha) (a, b)
//   rings         R ~ {0.75, 1.65, 2.4, 3},  phi = 2 pi U;  x = R (cos phi, sin phi) + 0.08 Z
//   swissroll     t = 3 pi / 2 (1 + 2 U);  x = (t cos t + Z, t sin t + Z') / 5
#include "io/toy_data.hpp"

#include <cmath>
#include <map>
#include <numbers>

#include "core/error.hpp"

namespace sdeflow {

namespace {

using std::numbers::pi;
using std::numbers::sqrt2;

using Generator = at::Tensor (*)(int64_t, at::Generator&);

const at::TensorOptions kDouble = at::TensorOptions().dtype(at::kDouble);

at::Tensor uniform(int64_t n, at::Generator& g) { return at::rand({n}, g, kDouble); }
at::Tensor normal(int64_t n, at::Generator& g) { return at::randn({n}, g, kDouble); }
// Integers uniform on {0, ..., count - 1}, as float64.
at::Tensor choice(int64_t n, int64_t count, at::Generator& g) { return at::randint(count, {n}, g, kDouble); }
at::Tensor pair(const at::Tensor& x, const at::Tensor& y) { return at::stack({x, y}, 1); }
// [n, 2] independent N(0, 1) draws (one call, so the order of draws is fixed).
at::Tensor normal_pairs(int64_t n, at::Generator& g) { return at::randn({n, 2}, g, kDouble); }

at::Tensor checkerboard(int64_t n, at::Generator& g) {
  const at::Tensor column = choice(n, 4, g) - 2.0;                                 // i in {-2, -1, 0, 1}
  const at::Tensor row = 2.0 * choice(n, 2, g) - 2.0 + at::remainder(column, 2.0);   // i + j even
  return 2.0 * (pair(column, row) + at::rand({n, 2}, g, kDouble));
}

at::Tensor eight_gaussians(int64_t n, at::Generator& g) {
  const at::Tensor angle = choice(n, 8, g) * (pi / 4.0);
  const double radius = 2.0 * sqrt2, sigma = sqrt2 / 4.0;
  return radius * pair(at::cos(angle), at::sin(angle)) + sigma * normal_pairs(n, g);
}

at::Tensor two_spirals(int64_t n, at::Generator& g) {
  const at::Tensor theta = 3.0 * pi * at::sqrt(uniform(n, g));
  const at::Tensor arm = 2.0 * choice(n, 2, g) - 1.0;
  const at::Tensor x = -theta * at::cos(theta) + 0.5 * uniform(n, g);
  const at::Tensor y = theta * at::sin(theta) + 0.5 * uniform(n, g);
  return (arm / 3.0).unsqueeze(1) * pair(x, y) + 0.1 * normal_pairs(n, g);
}

at::Tensor moons(int64_t n, at::Generator& g) {
  const at::Tensor inner = choice(n, 2, g);   // 0: outer moon, 1: inner moon
  const at::Tensor t = pi * uniform(n, g);
  const at::Tensor x = at::where(inner > 0.5, 1.0 - at::cos(t), at::cos(t));
  const at::Tensor y = at::where(inner > 0.5, 0.5 - at::sin(t), at::sin(t));
  const at::Tensor m = pair(x, y) + 0.1 * normal_pairs(n, g);
  return 2.0 * m - at::tensor({1.0, 0.2}, kDouble);
}

at::Tensor pinwheel(int64_t n, at::Generator& g) {
  const at::Tensor arm = choice(n, 5, g);
  const at::Tensor a = 1.0 + 0.3 * normal(n, g);
  const at::Tensor b = 0.1 * normal(n, g);
  const at::Tensor alpha = arm * (2.0 * pi / 5.0) + 0.25 * at::exp(a);
  const at::Tensor c = at::cos(alpha), s = at::sin(alpha);
  return 2.0 * pair(a * c + b * s, -a * s + b * c);
}

at::Tensor rings(int64_t n, at::Generator& g) {
  const at::Tensor radii = at::tensor({0.75, 1.65, 2.4, 3.0}, kDouble);
  const at::Tensor radius = radii.index_select(0, at::randint(4, {n}, g, at::TensorOptions().dtype(at::kLong)));
  const at::Tensor phi = 2.0 * pi * uniform(n, g);
  return radius.unsqueeze(1) * pair(at::cos(phi), at::sin(phi)) + 0.08 * normal_pairs(n, g);
}

at::Tensor swissroll(int64_t n, at::Generator& g) {
  const at::Tensor t = 1.5 * pi * (1.0 + 2.0 * uniform(n, g));
  return (pair(t * at::cos(t), t * at::sin(t)) + normal_pairs(n, g)) / 5.0;
}

const std::map<std::string, Generator>& registry() {
  static const std::map<std::string, Generator> generators{
      {"checkerboard", checkerboard}, {"8gaussians", eight_gaussians}, {"2spirals", two_spirals},
      {"moons", moons},               {"pinwheel", pinwheel},          {"rings", rings},
      {"swissroll", swissroll}};
  return generators;
}

}  // namespace

std::vector<std::string> toy_data_names() {
  return {"checkerboard", "8gaussians", "2spirals", "moons", "pinwheel", "rings", "swissroll"};
}

bool is_toy_data(const std::string& name) { return registry().count(name) > 0; }

at::Tensor sample_toy_data(const std::string& name, int64_t n, at::Generator& generator) {
  const auto found = registry().find(name);
  if (found == registry().end()) {
    std::string known;
    for (const auto& candidate : toy_data_names()) known += (known.empty() ? "" : ", ") + candidate;
    throw InputError("unknown toy data set '" + name + "' (known: " + known + ")");
  }
  if (n < 1) throw InputError("toy data set '" + name + "': n must be at least 1, got " + std::to_string(n));
  return found->second(n, generator).contiguous();
}

}  // namespace sdeflow
