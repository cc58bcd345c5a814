// The elementwise work of one node of the recurrent search cell, forward and backward, for `recurrence.py`.
//
// A node of the search cell sums, over its n inputs j, w_j0 tanh(h_j) + w_j1 relu(h_j) + w_j2 sigmoid(h_j) +
// w_j3 h_j mixed with the input's state through the gate c_j, then normalises with the batch's statistics. Written
// with PyTorch's operations that is some 25 operations forward and 60 backward on tensors of a few hundred kilobytes,
// each a pass over memory and a dispatch: most of a recurrent search step. Here each direction is one pass. The
// transcendental functions (tanh, sigmoid) stay PyTorch's (vectorised), computed once in the forward pass and kept.
//
// Tensors are contiguous: h, tanh(h), sigmoid(h), c and the input states [n, batch, hidden]; the edge weights [n, 4]
// in the order tanh, relu, sigmoid, identity. Sums over the batch are accumulated in double precision in row order.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "per_cpu_clones.h"

namespace {

constexpr int64_t kOperations = 4;

// One row b of the node's pre-normalisation value: u[x] = sum_j kept_j s_j[x] + c_j[x] (mixed_j[x] - kept_j s_j[x]).
template <typename T>
PER_CPU_CLONES void mix_row(const T* h, const T* tanh_h, const T* sigmoid_h, const T* c, const T* s, const T* w,
                            int64_t inputs, int64_t stride, int64_t hidden, T* u) {
  for (int64_t x = 0; x < hidden; ++x) u[x] = 0;
  for (int64_t j = 0; j < inputs; ++j) {
    const T w_tanh = w[j * kOperations], w_relu = w[j * kOperations + 1];
    const T w_sigmoid = w[j * kOperations + 2], w_identity = w[j * kOperations + 3];
    const T kept_weight = w_tanh + w_relu + w_sigmoid + w_identity;
    const int64_t o = j * stride;
#pragma omp simd
    for (int64_t x = 0; x < hidden; ++x) {
      const T hx = h[o + x];
      const T mixed = w_tanh * tanh_h[o + x] + w_relu * (hx > 0 ? hx : T(0)) + w_sigmoid * sigmoid_h[o + x] +
                      w_identity * hx;
      const T kept = kept_weight * s[o + x];
      u[x] += kept + c[o + x] * (mixed - kept);
    }
  }
}

// One row of one input's backward pass: the gradients of its [c, h] projection, its state's gradient through the
// kept share (added), and the row's contributions to the edge weights' gradient (added to sums[0..4]: the four
// activations', then the kept share's).
template <typename T>
PER_CPU_CLONES void edge_row_backward(const T* h, const T* tanh_h, const T* sigmoid_h, const T* c, const T* state,
                                      const T* u_grad, const T* w, int64_t hidden, T* gate_grad, T* activation_grad,
                                      T* state_grad, double* sums) {
  const T w_tanh = w[0], w_relu = w[1], w_sigmoid = w[2], w_identity = w[3];
  const T kept_weight = w_tanh + w_relu + w_sigmoid + w_identity;
  T s_tanh = 0, s_relu = 0, s_sigmoid = 0, s_identity = 0, s_kept = 0;
#pragma omp simd reduction(+ : s_tanh, s_relu, s_sigmoid, s_identity, s_kept)
  for (int64_t x = 0; x < hidden; ++x) {
    const T hx = h[x], t = tanh_h[x], s = sigmoid_h[x], cx = c[x], d = u_grad[x];
    const T relu = hx > 0 ? hx : T(0);
    const T mixed = w_tanh * t + w_relu * relu + w_sigmoid * s + w_identity * hx;
    const T kept = kept_weight * state[x];
    gate_grad[x] = d * (mixed - kept) * cx * (1 - cx);
    const T mixed_grad = d * cx;
    const T slope = w_tanh * (1 - t * t) + (hx > 0 ? w_relu : T(0)) + w_sigmoid * s * (1 - s) + w_identity;
    activation_grad[x] = mixed_grad * slope;
    const T kept_grad = d * (1 - cx);
    state_grad[x] += kept_grad * kept_weight;
    s_tanh += mixed_grad * t;
    s_relu += mixed_grad * relu;
    s_sigmoid += mixed_grad * s;
    s_identity += mixed_grad * hx;
    s_kept += kept_grad * state[x];
  }
  sums[0] += s_tanh;
  sums[1] += s_relu;
  sums[2] += s_sigmoid;
  sums[3] += s_identity;
  sums[4] += s_kept;
}

}  // namespace

// Returns u [batch, hidden] normalised with its batch statistics (x_hat) and the per-unit mean and biased variance,
// or, with normalize false, u itself (and empty statistics).
std::vector<torch::Tensor> mixed_node_forward(const torch::Tensor& h, const torch::Tensor& tanh_h,
                                              const torch::Tensor& sigmoid_h, const torch::Tensor& c,
                                              const torch::Tensor& states, const torch::Tensor& edge_weights,
                                              bool normalize, double eps) {
  const int64_t inputs = h.size(0), batch = h.size(1), hidden = h.size(2);
  auto u = torch::empty({batch, hidden}, h.options());
  auto mean = torch::empty({normalize ? hidden : 0}, h.options());
  auto variance = torch::empty({normalize ? hidden : 0}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "mixed_node_forward", [&] {
    const scalar_t* w = edge_weights.data_ptr<scalar_t>();
    scalar_t* out = u.data_ptr<scalar_t>();
    const int64_t stride = batch * hidden;
    at::parallel_for(0, batch, 8, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t o = b * hidden;
        mix_row<scalar_t>(h.data_ptr<scalar_t>() + o, tanh_h.data_ptr<scalar_t>() + o,
                          sigmoid_h.data_ptr<scalar_t>() + o, c.data_ptr<scalar_t>() + o,
                          states.data_ptr<scalar_t>() + o, w, inputs, stride, hidden, out + o);
      }
    });
    if (!normalize) return;
    std::vector<double> sums(hidden, 0.0), squares(hidden, 0.0);
    for (int64_t b = 0; b < batch; ++b) {
      const scalar_t* row = out + b * hidden;
      for (int64_t x = 0; x < hidden; ++x) sums[x] += row[x];
    }
    scalar_t* mean_out = mean.data_ptr<scalar_t>();
    scalar_t* variance_out = variance.data_ptr<scalar_t>();
    for (int64_t x = 0; x < hidden; ++x) sums[x] /= batch;
    for (int64_t b = 0; b < batch; ++b) {
      const scalar_t* row = out + b * hidden;
      for (int64_t x = 0; x < hidden; ++x) {
        const double centred = row[x] - sums[x];
        squares[x] += centred * centred;
      }
    }
    std::vector<scalar_t> invstd(hidden);
    for (int64_t x = 0; x < hidden; ++x) {
      mean_out[x] = static_cast<scalar_t>(sums[x]);
      variance_out[x] = static_cast<scalar_t>(squares[x] / batch);
      invstd[x] = static_cast<scalar_t>(1.0 / std::sqrt(squares[x] / batch + eps));
    }
    for (int64_t b = 0; b < batch; ++b) {
      scalar_t* row = out + b * hidden;
      for (int64_t x = 0; x < hidden; ++x) row[x] = (row[x] - mean_out[x]) * invstd[x];
    }
  });
  return {u, mean, variance};
}

// From the gradient of the node's normalised output (x_hat, 1 / std: batch statistics when `training`, else the
// running ones), writes the gradients of every input's [c, h] projection into `projection_grad` [n, batch,
// 2 hidden], adds the gradient of each input state through its kept share into `state_grads` [n, batch, hidden], and
// returns the gradient of the edge weights [n, 4].
torch::Tensor mixed_node_backward(const torch::Tensor& grad, const torch::Tensor& x_hat, const torch::Tensor& invstd,
                                  bool training, const torch::Tensor& h, const torch::Tensor& tanh_h,
                                  const torch::Tensor& sigmoid_h, const torch::Tensor& c,
                                  const torch::Tensor& states, const torch::Tensor& edge_weights,
                                  torch::Tensor projection_grad, torch::Tensor state_grads) {
  const int64_t inputs = h.size(0), batch = h.size(1), hidden = h.size(2);
  auto u_grad = torch::empty({batch, hidden}, h.options());
  auto edge_weight_grad = torch::zeros({inputs, kOperations}, edge_weights.options().dtype(torch::kDouble));
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "mixed_node_backward", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* xh = x_hat.data_ptr<scalar_t>();
    const scalar_t* inv = invstd.data_ptr<scalar_t>();
    scalar_t* du = u_grad.data_ptr<scalar_t>();
    std::vector<double> grad_mean(hidden, 0.0), projected_mean(hidden, 0.0);
    if (training) {
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t x = 0; x < hidden; ++x) {
          grad_mean[x] += g[b * hidden + x];
          projected_mean[x] += static_cast<double>(g[b * hidden + x]) * xh[b * hidden + x];
        }
      }
      for (int64_t x = 0; x < hidden; ++x) {
        grad_mean[x] /= batch;
        projected_mean[x] /= batch;
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t x = 0; x < hidden; ++x) {
        const int64_t i = b * hidden + x;
        du[i] = training ? static_cast<scalar_t>((g[i] - grad_mean[x] - xh[i] * projected_mean[x]) * inv[x])
                         : g[i] * inv[x];
      }
    }
    const scalar_t* w = edge_weights.data_ptr<scalar_t>();
    double* w_grad = edge_weight_grad.data_ptr<double>();
    at::parallel_for(0, inputs, 1, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        double sums[kOperations + 1] = {0, 0, 0, 0, 0};  // the four activations' sums, then the kept share's
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t o = (j * batch + b) * hidden;
          const scalar_t* hj = h.data_ptr<scalar_t>() + o;
          const scalar_t* tj = tanh_h.data_ptr<scalar_t>() + o;
          const scalar_t* sj = sigmoid_h.data_ptr<scalar_t>() + o;
          const scalar_t* cj = c.data_ptr<scalar_t>() + o;
          const scalar_t* state = states.data_ptr<scalar_t>() + o;
          const scalar_t* dub = du + b * hidden;
          scalar_t* gate_grad = projection_grad.data_ptr<scalar_t>() + (j * batch + b) * 2 * hidden;
          scalar_t* activation_grad = gate_grad + hidden;
          scalar_t* state_grad = state_grads.data_ptr<scalar_t>() + o;
          edge_row_backward<scalar_t>(hj, tj, sj, cj, state, dub, w + j * kOperations, hidden, gate_grad,
                                      activation_grad, state_grad, sums);
        }
        for (int64_t k = 0; k < kOperations; ++k) w_grad[j * kOperations + k] = sums[k] + sums[kOperations];
      }
    });
  });
  return edge_weight_grad.to(edge_weights.scalar_type());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mixed_node_forward", &mixed_node_forward);
  m.def("mixed_node_backward", &mixed_node_backward);
}
