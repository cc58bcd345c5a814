// The backward pass of a depthwise convolution (one k x k filter per channel) on the CPU, for `depthwise.py`.
//
// oneDNN computes the weight gradient of 5x5 and dilated depthwise filters 10-30 times slower than their forward pass
// (and the input gradient of strided dilated ones 50-100 times slower). Here each tap's weight gradient is a dot
// product along an image row that the compiler keeps in vector registers. Tensors are channels-last in memory:
// gradient [B, Ho, Wo, C], input and input gradient [B, H, W, C], filter taps [k, k, C].
//
// On x86-64 with GCC the row loops are compiled three times (AVX-512, AVX2, plain x86-64) and the one the CPU supports
// is chosen when the library loads, so that a build cached on one machine never runs instructions another lacks;
// elsewhere (ARM, clang) they are compiled once for the machine's baseline.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "per_cpu_clones.h"

namespace {

constexpr int64_t kLanes = 16;  // accumulators held in registers per tap: one AVX-512 vector of floats

inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

struct Geometry {
  int64_t batch, height, width, channels, out_height, out_width, kernel, stride, pad, dilation;

  // The input column that output column `wo` reads through tap j is wo * stride + offset(j).
  int64_t offset(int64_t j) const { return j * dilation - pad; }
  // The first and last output columns whose tap j falls inside the image.
  std::pair<int64_t, int64_t> columns(int64_t j) const {
    return {std::max<int64_t>(0, ceil_div(-offset(j), stride)),
            std::min(out_width - 1, floor_div(width - 1 - offset(j), stride))};
  }
};

// Adds the weight gradient of output rows [begin, end) (row = image * out_height + output row) to `taps`.
template <typename T>
PER_CPU_CLONES void weight_grad_rows(
    const T* grad, const T* input, T* taps, const Geometry& s, int64_t begin, int64_t end) {
  const int64_t C = s.channels;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t image = row / s.out_height, out_row = row % s.out_height;
    const T* grad_row = grad + row * s.out_width * C;
    for (int64_t i = 0; i < s.kernel; ++i) {
      const int64_t in_row = out_row * s.stride - s.pad + i * s.dilation;
      if (in_row < 0 || in_row >= s.height) continue;
      const T* input_row = input + (image * s.height + in_row) * s.width * C;
      for (int64_t j = 0; j < s.kernel; ++j) {
        const auto [first, last] = s.columns(j);
        const int64_t offset = s.offset(j);
        T* tap = taps + (i * s.kernel + j) * C;
        int64_t c0 = 0;
        for (; c0 + kLanes <= C; c0 += kLanes) {
          T lanes[kLanes] = {};
          for (int64_t wo = first; wo <= last; ++wo) {
            const T* g = grad_row + wo * C + c0;
            const T* x = input_row + (wo * s.stride + offset) * C + c0;
#pragma omp simd
            for (int64_t c = 0; c < kLanes; ++c) lanes[c] += g[c] * x[c];
          }
          for (int64_t c = 0; c < kLanes; ++c) tap[c0 + c] += lanes[c];
        }
        for (int64_t wo = first; wo <= last && c0 < C; ++wo)
          for (int64_t c = c0; c < C; ++c) tap[c] += grad_row[wo * C + c] * input_row[(wo * s.stride + offset) * C + c];
      }
    }
  }
}

// Adds the input gradient of images [begin, end) to `input_grad`.
template <typename T>
PER_CPU_CLONES void input_grad_images(
    const T* grad, const T* taps, T* input_grad, const Geometry& s, int64_t begin, int64_t end) {
  const int64_t C = s.channels;
  for (int64_t image = begin; image < end; ++image)
    for (int64_t out_row = 0; out_row < s.out_height; ++out_row) {
      const T* grad_row = grad + (image * s.out_height + out_row) * s.out_width * C;
      for (int64_t i = 0; i < s.kernel; ++i) {
        const int64_t in_row = out_row * s.stride - s.pad + i * s.dilation;
        if (in_row < 0 || in_row >= s.height) continue;
        T* input_grad_row = input_grad + (image * s.height + in_row) * s.width * C;
        for (int64_t j = 0; j < s.kernel; ++j) {
          const auto [first, last] = s.columns(j);
          const int64_t offset = s.offset(j);
          const T* tap = taps + (i * s.kernel + j) * C;
          for (int64_t wo = first; wo <= last; ++wo) {
            const T* g = grad_row + wo * C;
            T* x = input_grad_row + (wo * s.stride + offset) * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) x[c] += g[c] * tap[c];
          }
        }
      }
    }
}

}  // namespace

// The gradients with respect to the input (if `need_input`) and to the [C, 1, k, k] filter (if `need_weight`);
// undefined tensors for the others.
std::vector<torch::Tensor> depthwise_backward(torch::Tensor grad, torch::Tensor input, torch::Tensor weight,
                                              int64_t stride, int64_t pad, int64_t dilation, bool need_input,
                                              bool need_weight) {
  // Channels-last memory is NHWC: the permuted view is contiguous already, so these copy nothing.
  grad = grad.permute({0, 2, 3, 1}).contiguous();
  input = input.permute({0, 2, 3, 1}).contiguous();
  const Geometry s{input.size(0), input.size(1), input.size(2), input.size(3), grad.size(1),
                   grad.size(2),  weight.size(2), stride, pad, dilation};
  const int64_t taps_size = s.kernel * s.kernel * s.channels;
  torch::Tensor input_gradient, weight_gradient;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "depthwise_backward", [&] {
    if (need_weight) {
      // The rows in one fixed block per thread, each block summed into its own partial gradient, the partial ones
      // added up at the end: no two threads write the same accumulator, and the sums do not depend on scheduling.
      const int64_t blocks = at::get_num_threads(), rows = s.batch * s.out_height;
      auto partial = torch::zeros({blocks, taps_size}, input.options());
      at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t block = begin; block < end; ++block)
          weight_grad_rows<scalar_t>(grad.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(),
                                     partial.data_ptr<scalar_t>() + block * taps_size, s, rows * block / blocks,
                                     rows * (block + 1) / blocks);
      });
      weight_gradient = partial.sum(0).view({s.kernel, s.kernel, s.channels}).permute({2, 0, 1}).unsqueeze(1);
      weight_gradient = weight_gradient.contiguous();
    }
    if (need_input) {
      auto taps = weight.reshape({s.channels, s.kernel * s.kernel}).t().contiguous();
      auto pixels = torch::zeros({s.batch, s.height, s.width, s.channels}, input.options());
      // Parallel over images: no two threads write the same pixel.
      at::parallel_for(0, s.batch, 1, [&](int64_t begin, int64_t end) {
        input_grad_images<scalar_t>(grad.data_ptr<scalar_t>(), taps.data_ptr<scalar_t>(),
                                    pixels.data_ptr<scalar_t>(), s, begin, end);
      });
      input_gradient = pixels.permute({0, 3, 1, 2});
    }
  });
  return {input_gradient, weight_gradient};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("depthwise_backward", &depthwise_backward); }
