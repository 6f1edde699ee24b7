// The virtual Brownian tree: dyadic bisection of [lo, hi] with (increment, space-time Levy area) per node,
// split by the exact conditional Gaussian law, normals hashed from (seed, node, element). Derivation of the
// split and of the leaf polynomial: docs/sde_solvers.md, "Virtual Brownian tree".
#include "solvers/brownian_tree.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <deque>
#include <list>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"

namespace sdeflow {

namespace {

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;   // splitmix64's increment (odd, 2^64 / golden ratio)
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr int kMaxDepth = 50;                        // node positions lo + span j / 2^k stay exact in double

// splitmix64's output function: a bijection of 64-bit words with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Two independent standard normals for (node key, element): the splitmix64 stream started at the node's key
// gives two words per element, Box-Muller turns their top 53 bits into the pair.
inline void normal_pair(uint64_t node_key, uint64_t element, double& z0, double& z1) {
  const uint64_t base = node_key + 2 * element * kGamma;
  const uint64_t a = mix64(base + kGamma);
  const uint64_t b = mix64(base + 2 * kGamma);
  const double u1 = (static_cast<double>(a >> 11) + 0.5) * 0x1.0p-53;   // in (0, 1): log is finite
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double angle = kTwoPi * u2;
  z0 = r * std::cos(angle);
  z1 = r * std::sin(angle);
}

struct Split {   // a node's halves: left (dw1, h1) and right (dw2, h2), B D values each
  std::vector<double> dw1, h1, dw2, h2;
  void resize(size_t n) {
    dw1.resize(n);
    h1.resize(n);
    dw2.resize(n);
    h2.resize(n);
  }
};

}  // namespace

struct BrownianTree::Impl {
  double lo = 0.0, hi = 1.0, span = 1.0;
  int64_t batch = 1, dim = 1;
  uint64_t seed_key = 0;
  int depth = 0;
  double snap = 0.0;     // |t - node position| below this counts as the node (rounding of grids)
  double slack = 0.0;    // overshoot of [lo, hi] clamped instead of refused
  int64_t capacity = 0;
  int64_t splits = 0;
  std::vector<int64_t> bound;   // global rows of the query rows; empty with !is_bound: identity
  bool is_bound = false;

  using Entry = std::pair<std::shared_ptr<const Split>, std::list<uint64_t>::iterator>;
  std::list<uint64_t> recent;   // node indices, most recent first
  std::unordered_map<uint64_t, Entry> cache;

  struct Point {
    double t;
    std::vector<double> w, integral;
  };
  std::deque<Point> memo;   // the last full-batch points (a step's start is the previous step's end)

  uint64_t key(uint64_t node) const { return mix64(seed_key ^ mix64(node * kGamma + 0x2545f4914f6cdd1dULL)); }
  double position(int level, uint64_t j) const { return lo + span * std::ldexp(static_cast<double>(j), -level); }
  int64_t elements() const { return batch * dim; }

  std::shared_ptr<const Split> lookup(uint64_t node) {
    const auto found = cache.find(node);
    if (found == cache.end()) return nullptr;
    recent.splice(recent.begin(), recent, found->second.second);
    return found->second.first;
  }

  void insert(uint64_t node, std::shared_ptr<const Split> split) {
    if (capacity <= 0) return;
    while (static_cast<int64_t>(cache.size()) >= capacity) {
      cache.erase(recent.back());
      recent.pop_back();
    }
    recent.push_front(node);
    cache.emplace(node, Entry{std::move(split), recent.begin()});
  }

  // The halves of `node` (length `length`, values dw, h) for elements elems[0..n) (nullptr: all).
  // Given (dW, H) of [a, b], h = b - a:  dW1 = dW/2 + 3H/2 + Z,  dW2 = dW/2 - 3H/2 - Z,
  // H1 = H/4 - Z/2 + N,  H2 = H/4 - Z/2 - N,  Z ~ N(0, h/16), N ~ N(0, h/48) independent.
  void draw_split(uint64_t node, double length, const int64_t* elems, int64_t n, const std::vector<double>& dw,
                  const std::vector<double>& h, Split& out) {
    out.resize(static_cast<size_t>(n));
    const uint64_t node_key = key(node);
    const double z_scale = std::sqrt(length) / 4.0;
    const double n_scale = std::sqrt(length / 48.0);
    at::parallel_for(0, n, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        double z0, z1;
        normal_pair(node_key, static_cast<uint64_t>(elems == nullptr ? e : elems[e]), z0, z1);
        const double z = z_scale * z0;
        const double m = n_scale * z1;
        const double half_dw = 0.5 * dw[e];
        const double area = 1.5 * h[e];
        out.dw1[e] = half_dw + area + z;
        out.dw2[e] = half_dw - area - z;
        const double common = 0.25 * h[e] - 0.5 * z;
        out.h1[e] = common + m;
        out.h2[e] = common - m;
      }
    });
    ++splits;
  }

  // W(t) and int_lo^t W into w[0..n), integral[0..n) for elements elems (nullptr: every element).
  void walk(double t, const int64_t* elems, int64_t n, double* w, double* integral) {
    const bool full = elems == nullptr;
    std::vector<double> dw(static_cast<size_t>(n)), h(static_cast<size_t>(n));
    {
      const uint64_t root_key = key(0);
      const double w_scale = std::sqrt(span), h_scale = std::sqrt(span / 12.0);
      for (int64_t e = 0; e < n; ++e) {
        double z0, z1;
        normal_pair(root_key, static_cast<uint64_t>(full ? e : elems[e]), z0, z1);
        dw[e] = w_scale * z0;
        h[e] = h_scale * z1;
      }
    }
    if (t <= lo) {
      std::fill(w, w + n, 0.0);
      std::fill(integral, integral + n, 0.0);
      return;
    }
    if (t >= hi) {
      for (int64_t e = 0; e < n; ++e) {
        w[e] = dw[e];
        integral[e] = span * (0.5 * dw[e] + h[e]);
      }
      return;
    }
    std::vector<double> wa(static_cast<size_t>(n), 0.0), ia(static_cast<size_t>(n), 0.0);
    uint64_t node = 1, j = 0;
    double length = span;
    Split local;
    for (int level = 0; level < depth; ++level) {
      const Split* split = nullptr;
      std::shared_ptr<const Split> held = capacity > 0 ? lookup(node) : nullptr;
      if (held && full) {
        split = held.get();
      } else if (held) {
        local.resize(static_cast<size_t>(n));
        for (int64_t e = 0; e < n; ++e) {
          local.dw1[e] = held->dw1[elems[e]];
          local.h1[e] = held->h1[elems[e]];
          local.dw2[e] = held->dw2[elems[e]];
          local.h2[e] = held->h2[elems[e]];
        }
        split = &local;
      } else if (full && capacity > 0) {
        auto fresh = std::make_shared<Split>();
        draw_split(node, length, nullptr, n, dw, h, *fresh);
        held = fresh;
        insert(node, fresh);
        split = held.get();
      } else {
        draw_split(node, length, elems, n, dw, h, local);
        split = &local;
      }
      const double half = 0.5 * length;
      const double mid = position(level + 1, 2 * j + 1);
      if (std::abs(t - mid) <= snap) {
        for (int64_t e = 0; e < n; ++e) {
          w[e] = wa[e] + split->dw1[e];
          integral[e] = ia[e] + half * (wa[e] + 0.5 * split->dw1[e] + split->h1[e]);
        }
        return;
      }
      if (t < mid) {
        std::copy(split->dw1.begin(), split->dw1.end(), dw.begin());
        std::copy(split->h1.begin(), split->h1.end(), h.begin());
        node = 2 * node;
        j = 2 * j;
      } else {
        for (int64_t e = 0; e < n; ++e) {
          ia[e] += half * (wa[e] + 0.5 * split->dw1[e] + split->h1[e]);
          wa[e] += split->dw1[e];
        }
        std::copy(split->dw2.begin(), split->dw2.end(), dw.begin());
        std::copy(split->h2.begin(), split->h2.end(), h.begin());
        node = 2 * node + 1;
        j = 2 * j + 1;
      }
      length = half;
    }
    // The leaf: the conditional mean of the path given (dW, H), W(a + tau h) - W(a) = tau dW + 6 tau (1 - tau) H.
    const double a = position(depth, j);
    const double tau = std::clamp((t - a) / length, 0.0, 1.0);
    const double quadratic = 6.0 * tau * (1.0 - tau);
    const double area_weight = 3.0 * tau * tau - 2.0 * tau * tau * tau;   // int_0^tau 6 s (1 - s) ds
    for (int64_t e = 0; e < n; ++e) {
      w[e] = wa[e] + tau * dw[e] + quadratic * h[e];
      integral[e] = ia[e] + length * (tau * wa[e] + 0.5 * tau * tau * dw[e] + area_weight * h[e]);
    }
  }

  // Query times to clamped doubles; InputError outside [lo, hi] beyond rounding.
  std::vector<double> times(const at::Tensor& t, const char* what) const {
    if (t.dim() != 1) throw InputError(std::string("Brownian tree: ") + what + " must be a [B] tensor of times");
    const auto cpu = t.detach().to(at::kCPU, at::kDouble).contiguous();
    const int64_t n = cpu.size(0);
    const int64_t expected = is_bound ? static_cast<int64_t>(bound.size()) : batch;
    if (n != expected) {
      throw InputError("Brownian tree: a query has " + std::to_string(n) + " rows, expected " + std::to_string(expected) +
                       (is_bound ? " (the bound rows)" : " (the tree's batch)"));
    }
    std::vector<double> out(cpu.data_ptr<double>(), cpu.data_ptr<double>() + n);
    for (double& value : out) {
      if (!std::isfinite(value) || value < lo - slack || value > hi + slack) {
        throw InputError("Brownian tree: time " + std::to_string(value) + " outside [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
      }
      value = std::clamp(value, lo, hi);
    }
    return out;
  }

  // W and its time integral at per-row times: [n, D] float64 each (CPU).
  void evaluate(const std::vector<double>& t, at::Tensor& w, at::Tensor& integral) {
    const int64_t n = static_cast<int64_t>(t.size());
    w = at::empty({n, dim}, at::TensorOptions().dtype(at::kDouble));
    integral = at::empty({n, dim}, at::TensorOptions().dtype(at::kDouble));
    if (n == 0) return;
    double* w_out = w.data_ptr<double>();
    double* i_out = integral.data_ptr<double>();
    const bool same = std::all_of(t.begin(), t.end(), [&](double v) { return v == t.front(); });
    if (same && !is_bound) {   // the whole batch at one time (fixed grids): cached and memoised
      for (const auto& point : memo) {
        if (point.t == t.front()) {
          std::copy(point.w.begin(), point.w.end(), w_out);
          std::copy(point.integral.begin(), point.integral.end(), i_out);
          return;
        }
      }
      walk(t.front(), nullptr, elements(), w_out, i_out);
      memo.push_front(Point{t.front(), std::vector<double>(w_out, w_out + elements()),
                            std::vector<double>(i_out, i_out + elements())});
      if (memo.size() > 2) memo.pop_back();
      return;
    }
    // Per-row times: one walk per distinct time over the rows that ask for it.
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return t[a] < t[b]; });
    std::vector<int64_t> elems;
    std::vector<double> w_part, i_part;
    for (size_t start = 0; start < order.size();) {
      size_t stop = start;
      while (stop < order.size() && t[order[stop]] == t[order[start]]) ++stop;
      elems.clear();
      for (size_t k = start; k < stop; ++k) {
        const int64_t global = is_bound ? bound[order[k]] : order[k];
        for (int64_t d = 0; d < dim; ++d) elems.push_back(global * dim + d);
      }
      const int64_t m = static_cast<int64_t>(elems.size());
      w_part.resize(static_cast<size_t>(m));
      i_part.resize(static_cast<size_t>(m));
      walk(t[order[start]], elems.data(), m, w_part.data(), i_part.data());
      for (size_t k = start; k < stop; ++k) {
        const int64_t row = order[k];
        const int64_t offset = static_cast<int64_t>(k - start) * dim;
        std::copy(w_part.begin() + offset, w_part.begin() + offset + dim, w_out + row * dim);
        std::copy(i_part.begin() + offset, i_part.begin() + offset + dim, i_out + row * dim);
      }
      start = stop;
    }
  }

  // dW and H over [t0, t1] per row, float64 CPU.
  void interval(const at::Tensor& t0, const at::Tensor& t1, at::Tensor& dw, at::Tensor& area) {
    const auto a = times(t0, "t0");
    const auto b = times(t1, "t1");
    at::Tensor w0, i0, w1, i1;
    evaluate(a, w0, i0);
    evaluate(b, w1, i1);
    dw = w1 - w0;
    std::vector<double> inverse(a.size());
    for (size_t r = 0; r < a.size(); ++r) inverse[r] = b[r] != a[r] ? 1.0 / (b[r] - a[r]) : 0.0;
    const auto inv = at::tensor(inverse, at::TensorOptions().dtype(at::kDouble)).reshape({-1, 1});
    // H = (1/h) int_{t0}^{t1} W ds - (W_t0 + W_t1) / 2: symmetric in (t0, t1); 0 for an empty interval.
    area = at::where(inv != 0.0, (i1 - i0) * inv - 0.5 * (w0 + w1), at::zeros_like(dw));
  }
};

BrownianTree::BrownianTree(double t0, double t1, int64_t batch, int64_t dim, uint64_t seed, BrownianTreeOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!std::isfinite(t0) || !std::isfinite(t1) || t0 == t1) {
    throw InputError("Brownian tree: need finite t0 != t1, got " + std::to_string(t0) + ", " + std::to_string(t1));
  }
  if (batch < 1 || dim < 1) throw InputError("Brownian tree: batch and dim must be >= 1");
  if (!(options.tolerance > 0.0) || !std::isfinite(options.tolerance)) {
    throw InputError("Brownian tree: tolerance must be a positive number");
  }
  auto& s = *impl_;
  s.lo = std::min(t0, t1);
  s.hi = std::max(t0, t1);
  s.span = s.hi - s.lo;
  s.batch = batch;
  s.dim = dim;
  s.seed_key = mix64(seed + kGamma);
  while (s.depth < kMaxDepth && std::ldexp(s.span, -s.depth) >= options.tolerance) ++s.depth;
  const double scale = std::max({std::abs(s.lo), std::abs(s.hi), s.span});
  s.snap = 8.0 * DBL_EPSILON * scale;
  s.slack = 1e-9 * scale;
  const int64_t node_bytes = 4 * static_cast<int64_t>(sizeof(double)) * batch * dim;
  s.capacity = std::min<int64_t>(2 * s.depth + 16, std::max<int64_t>(options.cache_bytes, 0) / node_bytes);
}

BrownianTree::~BrownianTree() = default;

at::Tensor BrownianTree::increment(const at::Tensor& t0, const at::Tensor& t1) {
  const auto a = impl_->times(t0, "t0");
  const auto b = impl_->times(t1, "t1");
  at::Tensor w0, i0, w1, i1;
  impl_->evaluate(a, w0, i0);
  impl_->evaluate(b, w1, i1);
  return (w1 - w0).to(t0.options());
}

at::Tensor BrownianTree::levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  at::Tensor dw, area;
  impl_->interval(t0, t1, dw, area);
  return area.to(t0.options());
}

BrownianIncrement BrownianTree::increment_with_levy_area(const at::Tensor& t0, const at::Tensor& t1) {
  at::Tensor dw, area;
  impl_->interval(t0, t1, dw, area);
  return {dw.to(t0.options()), area.to(t0.options())};
}

void BrownianTree::bind_samples(const at::Tensor& index) {
  auto& s = *impl_;
  if (!index.defined()) {
    s.is_bound = false;
    s.bound.clear();
    return;
  }
  const auto cpu = index.detach().to(at::kCPU, at::kLong).contiguous().reshape({-1});
  s.bound.assign(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
  for (const int64_t row : s.bound) {
    if (row < 0 || row >= s.batch) {
      s.bound.clear();
      throw InputError("Brownian tree: bound row " + std::to_string(row) + " outside the batch of " +
                       std::to_string(s.batch));
    }
  }
  s.is_bound = true;
}

at::Tensor BrownianTree::value(const at::Tensor& t) {
  at::Tensor w, integral;
  impl_->evaluate(impl_->times(t, "t"), w, integral);
  return w.to(t.options());
}

at::Tensor BrownianTree::time_integral(const at::Tensor& t) {
  at::Tensor w, integral;
  impl_->evaluate(impl_->times(t, "t"), w, integral);
  return integral.to(t.options());
}

int64_t BrownianTree::batch() const { return impl_->batch; }
int64_t BrownianTree::dim() const { return impl_->dim; }
int BrownianTree::depth() const { return impl_->depth; }
double BrownianTree::leaf_length() const { return std::ldexp(impl_->span, -impl_->depth); }
int64_t BrownianTree::splits_drawn() const { return impl_->splits; }
int64_t BrownianTree::cached_nodes() const { return static_cast<int64_t>(impl_->cache.size()); }
int64_t BrownianTree::cache_capacity() const { return impl_->capacity; }

}  // namespace sdeflow
