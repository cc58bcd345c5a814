// The elementwise work of one node of the recurrent search cell, forward and backward, for `recurrence.py`.
//
// A node of the search cell sums, over its n inputs j, w_j0 tanh(h_j) + w_j1 relu(h_j) + w_j2 sigmoid(h_j) +
// w_j3 h_j mixed with the input's state through the gate c_j, then normalises with the batch's statistics (BatchNorm
// without an affine map). Written with PyTorch's operations that is some 25 operations forward and 60 backward on
// tensors of a few hundred kilobytes, each a pass over memory and a dispatch: most of a recurrent search step. Here
// each direction is one pass over the node's inputs. The transcendental functions (tanh, sigmoid) stay PyTorch's
// (vectorised), computed once in the forward pass and kept.
//
// Layouts (contiguous): the projections [n, batch, 2 hidden], each row [c, h] with the gate c already through its
// sigmoid; tanh(h), sigmoid(h) and the input states [n, batch, hidden]; the edge weights [n, 4] in the order tanh,
// relu, sigmoid, identity. Sums over the batch are accumulated in double precision in a fixed order (the same
// results whatever the number of threads).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "per_cpu_clones.h"

namespace {

constexpr int64_t kOperations = 4;

// One row b of the node's pre-normalisation value: u[x] = sum_j kept_j s_j[x] + c_j[x] (mixed_j[x] - kept_j s_j[x]).
// `projection`, `tanh_h`, `sigmoid_h` and `state` point at row b of input 0; `stride` is an input's size.
template <typename T>
PER_CPU_CLONES void mix_row(const T* projection, const T* tanh_h, const T* sigmoid_h, const T* state, const T* w,
                            int64_t inputs, int64_t stride, int64_t hidden, T* u) {
  for (int64_t x = 0; x < hidden; ++x) u[x] = 0;
  for (int64_t j = 0; j < inputs; ++j) {
    const T w_tanh = w[j * kOperations], w_relu = w[j * kOperations + 1];
    const T w_sigmoid = w[j * kOperations + 2], w_identity = w[j * kOperations + 3];
    const T kept_weight = w_tanh + w_relu + w_sigmoid + w_identity;
    const T* c = projection + 2 * j * stride;
    const T* h = c + hidden;
    const int64_t o = j * stride;
#pragma omp simd
    for (int64_t x = 0; x < hidden; ++x) {
      const T hx = h[x];
      const T mixed = w_tanh * tanh_h[o + x] + w_relu * (hx > 0 ? hx : T(0)) + w_sigmoid * sigmoid_h[o + x] +
                      w_identity * hx;
      const T kept = kept_weight * state[o + x];
      u[x] += kept + c[x] * (mixed - kept);
    }
  }
}

// One row of one input's backward pass: the gradient of its [c, h] projection (before the gate's sigmoid), its
// state's gradient through the kept share (added), and the row's contributions to the edge weights' gradient
// (sums[0..3]: the four activations'; sums[4]: the kept share's, common to the four).
template <typename T>
PER_CPU_CLONES void edge_row_backward(const T* c, const T* tanh_h, const T* sigmoid_h, const T* state,
                                      const T* u_grad, const T* w, int64_t hidden, T* projection_grad, T* state_grad,
                                      double* sums) {
  const T* h = c + hidden;
  const T w_tanh = w[0], w_relu = w[1], w_sigmoid = w[2], w_identity = w[3];
  const T kept_weight = w_tanh + w_relu + w_sigmoid + w_identity;
  T s_tanh = 0, s_relu = 0, s_sigmoid = 0, s_identity = 0, s_kept = 0;
#pragma omp simd reduction(+ : s_tanh, s_relu, s_sigmoid, s_identity, s_kept)
  for (int64_t x = 0; x < hidden; ++x) {
    const T hx = h[x], t = tanh_h[x], s = sigmoid_h[x], cx = c[x], d = u_grad[x];
    const T relu = hx > 0 ? hx : T(0);
    const T mixed = w_tanh * t + w_relu * relu + w_sigmoid * s + w_identity * hx;
    const T kept = kept_weight * state[x];
    projection_grad[x] = d * (mixed - kept) * cx * (1 - cx);
    const T mixed_grad = d * cx;
    const T slope = w_tanh * (1 - t * t) + (hx > 0 ? w_relu : T(0)) + w_sigmoid * s * (1 - s) + w_identity;
    projection_grad[hidden + x] = mixed_grad * slope;
    const T kept_grad = d * (1 - cx);
    state_grad[x] += kept_grad * kept_weight;
    s_tanh += mixed_grad * t;
    s_relu += mixed_grad * relu;
    s_sigmoid += mixed_grad * s;
    s_identity += mixed_grad * hx;
    s_kept += kept_grad * state[x];
  }
  sums[0] = s_tanh;
  sums[1] = s_relu;
  sums[2] = s_sigmoid;
  sums[3] = s_identity;
  sums[4] = s_kept;
}

}  // namespace

// Writes the node's normalised value x_hat into `out` [batch, hidden] and 1 / sqrt(variance + eps) into `invstd`
// [hidden]: in training with the batch's statistics, moving the running ones in place as nn.BatchNorm1d does
// (momentum, unbiased variance); in evaluation with the running ones.
void mixed_node_forward(const torch::Tensor& projection, const torch::Tensor& tanh_h, const torch::Tensor& sigmoid_h,
                        const torch::Tensor& states, const torch::Tensor& edge_weights, torch::Tensor running_mean,
                        torch::Tensor running_var, bool training, double momentum, double eps, torch::Tensor out,
                        torch::Tensor invstd) {
  const int64_t inputs = states.size(0), batch = states.size(1), hidden = states.size(2);
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "mixed_node_forward", [&] {
    const scalar_t* w = edge_weights.data_ptr<scalar_t>();
    const scalar_t* p = projection.data_ptr<scalar_t>();
    const scalar_t* t = tanh_h.data_ptr<scalar_t>();
    const scalar_t* s = sigmoid_h.data_ptr<scalar_t>();
    const scalar_t* state = states.data_ptr<scalar_t>();
    scalar_t* u = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 8, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t o = b * hidden;
        mix_row<scalar_t>(p + 2 * o, t + o, s + o, state + o, w, inputs, batch * hidden, hidden, u + o);
      }
    });
    scalar_t* mean = running_mean.data_ptr<scalar_t>();
    scalar_t* variance = running_var.data_ptr<scalar_t>();
    scalar_t* inv = invstd.data_ptr<scalar_t>();
    std::vector<double> shift(hidden);
    if (training) {
      std::vector<double> sums(hidden, 0.0), squares(hidden, 0.0);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t x = 0; x < hidden; ++x) sums[x] += u[b * hidden + x];
      }
      for (int64_t x = 0; x < hidden; ++x) sums[x] /= batch;
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t x = 0; x < hidden; ++x) {
          const double centred = u[b * hidden + x] - sums[x];
          squares[x] += centred * centred;
        }
      }
      const double unbiased = batch > 1 ? static_cast<double>(batch) / (batch - 1) : 1.0;
      for (int64_t x = 0; x < hidden; ++x) {
        const double batch_variance = squares[x] / batch;
        mean[x] += static_cast<scalar_t>(momentum * (sums[x] - mean[x]));
        variance[x] += static_cast<scalar_t>(momentum * (batch_variance * unbiased - variance[x]));
        inv[x] = static_cast<scalar_t>(1.0 / std::sqrt(batch_variance + eps));
        shift[x] = sums[x];
      }
    } else {
      for (int64_t x = 0; x < hidden; ++x) {
        inv[x] = static_cast<scalar_t>(1.0 / std::sqrt(static_cast<double>(variance[x]) + eps));
        shift[x] = mean[x];
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      scalar_t* row = u + b * hidden;
      for (int64_t x = 0; x < hidden; ++x) row[x] = static_cast<scalar_t>((row[x] - shift[x]) * inv[x]);
    }
  });
}

// From the gradient `grad` of the node's x_hat (and its 1 / std: batch statistics when `training`, else the running
// ones), writes the gradients of every input's [c, h] projection into `projection_grad` [n, batch, 2 hidden], adds
// each input state's gradient through its kept share into `state_grads` [n, batch, hidden], and adds the edge weights'
// gradient into `edge_weight_grad` [n, 4].
void mixed_node_backward(const torch::Tensor& grad, const torch::Tensor& x_hat, const torch::Tensor& invstd,
                         bool training, const torch::Tensor& projection, const torch::Tensor& tanh_h,
                         const torch::Tensor& sigmoid_h, const torch::Tensor& states,
                         const torch::Tensor& edge_weights, torch::Tensor projection_grad, torch::Tensor state_grads,
                         torch::Tensor edge_weight_grad) {
  const int64_t inputs = states.size(0), batch = states.size(1), hidden = states.size(2);
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "mixed_node_backward", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* xh = x_hat.data_ptr<scalar_t>();
    const scalar_t* inv = invstd.data_ptr<scalar_t>();
    std::vector<scalar_t> u_grad(batch * hidden);
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
        u_grad[i] = static_cast<scalar_t>((g[i] - grad_mean[x] - xh[i] * projected_mean[x]) * inv[x]);
      }
    }
    const scalar_t* w = edge_weights.data_ptr<scalar_t>();
    const scalar_t* p = projection.data_ptr<scalar_t>();
    const scalar_t* t = tanh_h.data_ptr<scalar_t>();
    const scalar_t* s = sigmoid_h.data_ptr<scalar_t>();
    const scalar_t* state = states.data_ptr<scalar_t>();
    scalar_t* pg = projection_grad.data_ptr<scalar_t>();
    scalar_t* sg = state_grads.data_ptr<scalar_t>();
    // the edge weights' gradient: one partial sum per (input, row), added up in row order afterwards
    std::vector<double> partial(inputs * batch * (kOperations + 1));
    at::parallel_for(0, inputs * batch, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t j = i / batch, b = i % batch;
        const int64_t o = i * hidden;
        edge_row_backward<scalar_t>(p + 2 * o, t + o, s + o, state + o, u_grad.data() + b * hidden,
                                    w + j * kOperations, hidden, pg + 2 * o, sg + o,
                                    partial.data() + i * (kOperations + 1));
      }
    });
    scalar_t* w_grad = edge_weight_grad.data_ptr<scalar_t>();
    for (int64_t j = 0; j < inputs; ++j) {
      double sums[kOperations + 1] = {0, 0, 0, 0, 0};
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k <= kOperations; ++k) sums[k] += partial[(j * batch + b) * (kOperations + 1) + k];
      }
      for (int64_t k = 0; k < kOperations; ++k) w_grad[j * kOperations + k] += sums[k] + sums[kOperations];
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mixed_node_forward", &mixed_node_forward);
  m.def("mixed_node_backward", &mixed_node_backward);
}
