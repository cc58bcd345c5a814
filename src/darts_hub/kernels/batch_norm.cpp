// BatchNorm in training mode (the batch's statistics) on channels-last CPU tensors, for `batch_norm.py`.
//
// PyTorch's channels-last BatchNorm runs 2-5 times slower than the memory traffic it needs, most of all when the
// channels are not a multiple of the vector width (DARTS_V2's 36). Here an image tensor [N, C, H, W] stored
// channels-last is a [rows, C] matrix (rows = N * H * W): the forward pass is one pass of per-channel sums and one
// affine pass, the backward pass one pass of per-channel sums and one affine pass. Sums are accumulated in double
// precision in a fixed number of row blocks (the same sums whatever the thread count and scheduling).
//
// On x86-64 with GCC the row loops are compiled for AVX-512, AVX2 and plain x86-64, the one the CPU supports chosen
// when the library loads (`per_cpu_clones.h`).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "per_cpu_clones.h"

namespace {

constexpr int64_t kBlocks = 64;  // row blocks of the sums: fixed, so that the rounding is too

// sums[c] += sum of a[r, c]; products[c] += sum of a[r, c] * b[r, c], over rows [begin, end).
template <typename T>
PER_CPU_CLONES void sum_rows(const T* a, const T* b, int64_t begin, int64_t end, int64_t channels, double* sums,
                             double* products) {
  for (int64_t r = begin; r < end; ++r) {
    const T* a_row = a + r * channels;
    const T* b_row = b + r * channels;
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) {
      const double value = a_row[c];
      sums[c] += value;
      products[c] += value * static_cast<double>(b_row[c]);
    }
  }
}

// out[r, c] = x[r, c] * scale[c] + shift[c] (+ other[r, c] * other_scale[c]), over rows [begin, end).
template <typename T>
PER_CPU_CLONES void affine_rows(const T* x, const T* other, T* out, int64_t begin, int64_t end, int64_t channels,
                                const T* scale, const T* other_scale, const T* shift) {
  for (int64_t r = begin; r < end; ++r) {
    const T* x_row = x + r * channels;
    T* out_row = out + r * channels;
    if (other != nullptr) {
      const T* other_row = other + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) out_row[c] = x_row[c] * scale[c] + other_row[c] * other_scale[c] + shift[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) out_row[c] = x_row[c] * scale[c] + shift[c];
    }
  }
}

// Per-channel sums of a and of a * b over all rows, in double precision.
template <typename T>
void channel_sums(const T* a, const T* b, int64_t rows, int64_t channels, std::vector<double>& sums,
                  std::vector<double>& products) {
  std::vector<double> partial(2 * kBlocks * channels, 0.0);
  at::parallel_for(0, kBlocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      double* block_sums = partial.data() + 2 * block * channels;
      sum_rows<T>(a, b, rows * block / kBlocks, rows * (block + 1) / kBlocks, channels, block_sums,
                  block_sums + channels);
    }
  });
  sums.assign(channels, 0.0);
  products.assign(channels, 0.0);
  for (int64_t block = 0; block < kBlocks; ++block) {
    for (int64_t c = 0; c < channels; ++c) {
      sums[c] += partial[2 * block * channels + c];
      products[c] += partial[(2 * block + 1) * channels + c];
    }
  }
}

template <typename T>
void affine(const T* x, const T* other, T* out, int64_t rows, int64_t channels, const std::vector<T>& scale,
            const std::vector<T>& other_scale, const std::vector<T>& shift) {
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    affine_rows<T>(x, other, out, begin, end, channels, scale.data(), other_scale.data(), shift.data());
  });
}

}  // namespace

// x: [N, C, H, W] channels-last. Returns the output, the batch mean, 1 / sqrt(biased variance + eps) and the biased
// variance (per channel, in x's dtype).
std::vector<torch::Tensor> batch_norm_forward(const torch::Tensor& x, const c10::optional<torch::Tensor>& weight,
                                              const c10::optional<torch::Tensor>& bias, double eps) {
  const int64_t channels = x.size(1), rows = x.numel() / channels;
  auto output = torch::empty_like(x);
  auto mean = torch::empty({channels}, x.options());
  auto invstd = torch::empty({channels}, x.options());
  auto variance = torch::empty({channels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "batch_norm_forward", [&] {
    const scalar_t* data = x.data_ptr<scalar_t>();
    std::vector<double> sums, squares;
    channel_sums<scalar_t>(data, data, rows, channels, sums, squares);
    std::vector<scalar_t> scale(channels), shift(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const double m = sums[c] / rows;
      const double v = std::max(squares[c] / rows - m * m, 0.0);
      const double inverse = 1.0 / std::sqrt(v + eps);
      const double w = weight.has_value() ? static_cast<double>(weight->data_ptr<scalar_t>()[c]) : 1.0;
      const double b = bias.has_value() ? static_cast<double>(bias->data_ptr<scalar_t>()[c]) : 0.0;
      mean.data_ptr<scalar_t>()[c] = m;
      invstd.data_ptr<scalar_t>()[c] = inverse;
      variance.data_ptr<scalar_t>()[c] = v;
      scale[c] = inverse * w;
      shift[c] = b - m * inverse * w;
    }
    affine<scalar_t>(data, nullptr, output.data_ptr<scalar_t>(), rows, channels, scale, scale, shift);
  });
  return {output, mean, invstd, variance};
}

// grad, x: [N, C, H, W] channels-last. Returns the input gradient (undefined unless need_input), and the sums of
// grad * x_hat and of grad per channel (the weight and bias gradients).
std::vector<torch::Tensor> batch_norm_backward(const torch::Tensor& grad, const torch::Tensor& x,
                                               const torch::Tensor& mean, const torch::Tensor& invstd,
                                               const c10::optional<torch::Tensor>& weight, bool need_input) {
  const int64_t channels = x.size(1), rows = x.numel() / channels;
  auto weight_grad = torch::empty({channels}, x.options());
  auto bias_grad = torch::empty({channels}, x.options());
  torch::Tensor input_grad;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "batch_norm_backward", [&] {
    std::vector<double> grad_sums, grad_x_sums;
    channel_sums<scalar_t>(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), rows, channels, grad_sums, grad_x_sums);
    // input gradient = invstd * w * (grad - mean(grad) - x_hat * mean(grad * x_hat)) = grad * a + x * b + k
    std::vector<scalar_t> a(channels), b(channels), k(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const double m = mean.data_ptr<scalar_t>()[c], inverse = invstd.data_ptr<scalar_t>()[c];
      const double w = weight.has_value() ? static_cast<double>(weight->data_ptr<scalar_t>()[c]) : 1.0;
      const double grad_x_hat = inverse * (grad_x_sums[c] - m * grad_sums[c]);
      weight_grad.data_ptr<scalar_t>()[c] = grad_x_hat;
      bias_grad.data_ptr<scalar_t>()[c] = grad_sums[c];
      const double scale = inverse * w, x_scale = -scale * inverse * grad_x_hat / rows;
      a[c] = scale;
      b[c] = x_scale;
      k[c] = -scale * grad_sums[c] / rows - x_scale * m;
    }
    if (need_input) {
      input_grad = torch::empty_like(x);
      affine<scalar_t>(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), input_grad.data_ptr<scalar_t>(), rows,
                       channels, a, b, k);
    }
  });
  return {input_grad, weight_grad, bias_grad};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("batch_norm_forward", &batch_norm_forward);
  m.def("batch_norm_backward", &batch_norm_backward);
}
