#pragma once
// Pieces of the likelihood-bound objective that tests use directly (docs/fp_diffusion.md):
//  - the implicit (divergence) form of the bound for a forward process without a transition density (fp-field),
//    from simulated forward paths;
//  - the regulariser of the probability-flow field (kinetic energy and Jacobian Frobenius norm, Finlay et al.).
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "processes/process.hpp"

namespace sdeflow {

using ScoreFunction = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t)>;

// div_x u(x) ([B]) of a field u computed from x by autograd: exact (n vector-Jacobian products) for n <= 8, one
// Gaussian Hutchinson probe from `generator` above. create_graph keeps it differentiable (training).
at::Tensor field_divergence(const at::Tensor& u, const at::Tensor& x, bool create_graph, at::Generator& generator);

// The bound's integrand at x_t ([B]): 1/2 s^T Lambda s + div(Lambda s - f_flow), s = score(x_t, t). Its expectation
// over x_t ~ p_t with the exact score is -dH(p_t)/dt. x_t is used as it is when it requires gradients (a simulated
// path), else as a fresh leaf.
at::Tensor implicit_integrand(const Process& process, const ScoreFunction& score, const at::Tensor& xt,
                              const at::Tensor& t, at::Generator& generator);

// One-sample estimate per row ([B]) of the bound, for data x0 [B, n] (model space, float64) and times t [B] drawn
// from a proposal of density q [B]:
//   -log p(x_0) <= E[-log pi(X_T)] + int_0^T E[ 1/2 s^T Lambda s + div(Lambda s - f_flow) ] dt,
// Lambda = G G^T, f_flow = f - 1/2 div Lambda (the probability flow's drift without the score), s the model's score;
// X_t and then X_T simulated from x0 with Process::simulate (`steps` steps each). With the exact score and data the
// expectation is H(p_0) + KL(p_T || pi). Differentiable in the score's parameters and, pathwise, in the process's.
at::Tensor simulated_bound(const Process& process, const ScoreFunction& score, const at::Tensor& x0,
                           const at::Tensor& t, const at::Tensor& q, int64_t steps, at::Generator& generator);

// Per row ([B]): kinetic |v|^2 + jacobian |e^T grad_x v|^2 (e ~ N(0, I), one probe from `generator`) of the
// probability-flow field v = process.flow_field(x, t, s) with s = score(x, t). x must be in the autograd graph (a
// leaf requiring gradients or computed from the process's parameters).
at::Tensor flow_regulariser(const Process& process, const ScoreFunction& score, const at::Tensor& x,
                            const at::Tensor& t, double kinetic, double jacobian, at::Generator& generator);

// A term whose value is `value` and whose gradient is that of `value` with respect to `only` alone (zero for every
// other tensor of the graph): how the regulariser reaches the forward process's parameters and not the network's.
at::Tensor gradient_only_into(const at::Tensor& value, const std::vector<at::Tensor>& only);

}  // namespace sdeflow
