// 3x3 max and average pooling (padding 1, stride 1 or 2) of channels-last CPU tensors, for `pooling.py`.
//
// PyTorch's channels-last pooling runs 5-10 times slower than the memory traffic it needs (a 3x3 max pool of 16
// channels at 32x32: 5 ms, ten copies of the tensor), and max pooling keeps the flat index of each maximum as int64
// for the backward pass: twice the memory of a float32 activation. Here an image is a [H, W, C] array; each output
// pixel's window is read with the channels as the inner, vectorised loop, and max pooling keeps the position of each
// maximum in its window (0-8) in one byte. The same results as PyTorch's: the same scan order and tie rule (the
// first maximum, NaN wins), the same summation order.
//
// On x86-64 with GCC the pixel loops are compiled for AVX-512, AVX2 and plain x86-64, the one the CPU supports chosen
// when the library loads (`per_cpu_clones.h`).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "per_cpu_clones.h"

namespace {

constexpr int64_t kSize = 3, kPad = 1;

struct Geometry {
  int64_t batch, height, width, channels, out_height, out_width, stride;

  Geometry(const at::IntArrayRef& input_shape, int64_t stride_)
      : batch(input_shape[0]), height(input_shape[2]), width(input_shape[3]), channels(input_shape[1]),
        out_height((input_shape[2] + 2 * kPad - kSize) / stride_ + 1),
        out_width((input_shape[3] + 2 * kPad - kSize) / stride_ + 1), stride(stride_) {}

  // The input row (or column) that output row (or column) `o` reads through tap `k` (0-2): may be outside.
  int64_t source(int64_t o, int64_t k) const { return o * stride - kPad + k; }
  // The output columns [first, last) whose tap `k` falls inside the image.
  std::pair<int64_t, int64_t> columns(int64_t k) const {
    const int64_t reach = width - 1 - k + kPad;  // the largest ow * stride inside the image
    return {k < kPad ? 1 : 0, reach < 0 ? 0 : std::min(out_width, reach / stride + 1)};
  }
  // The number of window pixels inside the image (count_include_pad=False).
  int64_t count(int64_t oh, int64_t ow) const {
    const auto inside = [](int64_t first, int64_t size) {
      return std::min(first + kSize, size) - std::max<int64_t>(first, 0);
    };
    return inside(source(oh, 0), height) * inside(source(ow, 0), width);
  }
};

// Each output row is computed tap by tap: for tap (kh, kw), output column ow reads input column ow * stride + kw - 1
// of input row oh * stride + kh - 1, so with stride 1 a whole row of outputs reads one contiguous run of the input
// ([columns, C] flattened): one long vectorised loop; with stride 2, one run of C values per column. `for_each_run`
// calls run(tap, out_offset, in_offset, length) for every run of every tap inside the image of output row `oh`
// (tap = kh * 3 + kw; offsets in values, from the start of the output row and of the input image).
template <typename Run>
inline void for_each_run(const Geometry& g, int64_t oh, Run run) {
  for (int64_t kh = 0; kh < kSize; ++kh) {
    const int64_t ih = g.source(oh, kh);
    if (ih < 0 || ih >= g.height) continue;
    for (int64_t kw = 0; kw < kSize; ++kw) {
      const auto [first, last] = g.columns(kw);
      const int64_t tap = kh * kSize + kw, row = ih * g.width;
      if (first >= last) continue;
      if (g.stride == 1) {
        run(tap, first * g.channels, (row + g.source(first, kw)) * g.channels, (last - first) * g.channels);
      } else {
        for (int64_t ow = first; ow < last; ++ow) {
          run(tap, ow * g.channels, (row + g.source(ow, kw)) * g.channels, g.channels);
        }
      }
    }
  }
}

// best = max(best, values) with PyTorch's rule (a larger value, or NaN), taps = tap where it changed.
template <typename T>
PER_CPU_CLONES void max_run(T* best, T* taps, const T* values, int64_t length, T tap) {
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) {
    const T value = values[i];
    const bool take = (value > best[i]) | (value != value);
    best[i] = take ? value : best[i];
    taps[i] = take ? tap : taps[i];
  }
}

template <typename T>
PER_CPU_CLONES void add_run(T* sums, const T* values, int64_t length) {
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) sums[i] += values[i];
}

// sums += values where taps == tap.
template <typename T>
PER_CPU_CLONES void add_run_where(T* sums, const T* values, const T* taps, int64_t length, T tap) {
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) sums[i] += taps[i] == tap ? values[i] : T(0);
}

// One output row of max pooling (`out`, `where`: [out_width, C]) of one image ([H, W, C]). `taps` ([out_width, C])
// holds the window positions in the type of the values while the row is scanned (one vector width for both).
template <typename T>
void max_pool_row(const T* image, T* out, uint8_t* where, T* taps, int64_t oh, const Geometry& g) {
  const int64_t length = g.out_width * g.channels;
  std::fill(out, out + length, -std::numeric_limits<T>::infinity());
  // Where every value is -inf the maximum is the window's first pixel inside the image, as in PyTorch.
  const int64_t first_row = std::max<int64_t>(g.source(oh, 0), 0) - g.source(oh, 0);
  for (int64_t ow = 0; ow < g.out_width; ++ow) {
    const int64_t first_column = std::max<int64_t>(g.source(ow, 0), 0) - g.source(ow, 0);
    std::fill(taps + ow * g.channels, taps + (ow + 1) * g.channels, static_cast<T>(first_row * kSize + first_column));
  }
  for_each_run(g, oh, [&](int64_t tap, int64_t out_offset, int64_t in_offset, int64_t run_length) {
    max_run<T>(out + out_offset, taps + out_offset, image + in_offset, run_length, static_cast<T>(tap));
  });
  for (int64_t i = 0; i < length; ++i) where[i] = static_cast<uint8_t>(taps[i]);
}

// The input gradient of one output row of max pooling: each output gradient goes to its maximum's pixel.
template <typename T>
void max_pool_backward_row(const T* grad, const uint8_t* where, T* image_grad, T* taps, int64_t oh,
                           const Geometry& g) {
  for (int64_t i = 0; i < g.out_width * g.channels; ++i) taps[i] = static_cast<T>(where[i]);
  for_each_run(g, oh, [&](int64_t tap, int64_t out_offset, int64_t in_offset, int64_t run_length) {
    add_run_where<T>(image_grad + in_offset, grad + out_offset, taps + out_offset, run_length, static_cast<T>(tap));
  });
}

// One output row of average pooling over the window's pixels inside the image (count_include_pad=False).
template <typename T>
void avg_pool_row(const T* image, T* out, int64_t oh, const Geometry& g) {
  std::fill(out, out + g.out_width * g.channels, T(0));
  for_each_run(g, oh, [&](int64_t, int64_t out_offset, int64_t in_offset, int64_t run_length) {
    add_run<T>(out + out_offset, image + in_offset, run_length);
  });
  for (int64_t ow = 0; ow < g.out_width; ++ow) {
    const T count = static_cast<T>(g.count(oh, ow));
    for (int64_t c = 0; c < g.channels; ++c) out[ow * g.channels + c] /= count;
  }
}

// The input gradient of one output row of average pooling: each output gradient divided by its window's pixel count
// (in `shares`, [out_width, C]), added to every pixel of the window.
template <typename T>
void avg_pool_backward_row(const T* grad, T* image_grad, T* shares, int64_t oh, const Geometry& g) {
  for (int64_t ow = 0; ow < g.out_width; ++ow) {
    const T count = static_cast<T>(g.count(oh, ow));
    for (int64_t c = 0; c < g.channels; ++c) shares[ow * g.channels + c] = grad[ow * g.channels + c] / count;
  }
  for_each_run(g, oh, [&](int64_t, int64_t out_offset, int64_t in_offset, int64_t run_length) {
    add_run<T>(image_grad + in_offset, shares + out_offset, run_length);
  });
}

torch::Tensor empty_output(const torch::Tensor& like, const Geometry& g, at::ScalarType dtype) {
  return torch::empty({g.batch, g.channels, g.out_height, g.out_width}, like.options().dtype(dtype),
                      at::MemoryFormat::ChannelsLast);
}

// Calls row(n, oh, offset, scratch) for output row oh of image n (offset: of the row in the output), rows in
// parallel; scratch holds out_width * C values. For the backward passes `by_image`: one image's rows in order (they
// add into its gradient).
template <typename T, typename Row>
void for_each_row(const Geometry& g, bool by_image, Row row) {
  const int64_t rows_per_task = by_image ? g.out_height : 1;
  at::parallel_for(0, g.batch * g.out_height / rows_per_task, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(g.out_width * g.channels);
    for (int64_t task = begin; task < end; ++task) {
      for (int64_t r = task * rows_per_task; r < (task + 1) * rows_per_task; ++r) {
        row(r / g.out_height, r % g.out_height, r * g.out_width * g.channels, scratch.data());
      }
    }
  });
}

}  // namespace

// x: [N, C, H, W] channels-last. Returns the output and the position (0-8) of each maximum in its window.
std::vector<torch::Tensor> max_pool_forward(const torch::Tensor& x, int64_t stride) {
  const Geometry g(x.sizes(), stride);
  auto out = empty_output(x, g, x.scalar_type());
  auto where = empty_output(x, g, at::kByte);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool_forward", [&] {
    const int64_t image_size = g.height * g.width * g.channels;
    for_each_row<scalar_t>(g, false, [&](int64_t n, int64_t oh, int64_t offset, scalar_t* taps) {
      max_pool_row<scalar_t>(x.data_ptr<scalar_t>() + n * image_size, out.data_ptr<scalar_t>() + offset,
                             where.data_ptr<uint8_t>() + offset, taps, oh, g);
    });
  });
  return {out, where};
}

torch::Tensor max_pool_backward(const torch::Tensor& grad, const torch::Tensor& where, at::IntArrayRef input_shape,
                                int64_t stride) {
  const Geometry g(input_shape, stride);
  auto input_grad = torch::empty(input_shape, grad.options(), at::MemoryFormat::ChannelsLast).zero_();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "max_pool_backward", [&] {
    const int64_t image_size = g.height * g.width * g.channels;
    for_each_row<scalar_t>(g, true, [&](int64_t n, int64_t oh, int64_t offset, scalar_t* taps) {
      max_pool_backward_row<scalar_t>(grad.data_ptr<scalar_t>() + offset, where.data_ptr<uint8_t>() + offset,
                                      input_grad.data_ptr<scalar_t>() + n * image_size, taps, oh, g);
    });
  });
  return input_grad;
}

torch::Tensor avg_pool_forward(const torch::Tensor& x, int64_t stride) {
  const Geometry g(x.sizes(), stride);
  auto out = empty_output(x, g, x.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "avg_pool_forward", [&] {
    const int64_t image_size = g.height * g.width * g.channels;
    for_each_row<scalar_t>(g, false, [&](int64_t n, int64_t oh, int64_t offset, scalar_t*) {
      avg_pool_row<scalar_t>(x.data_ptr<scalar_t>() + n * image_size, out.data_ptr<scalar_t>() + offset, oh, g);
    });
  });
  return out;
}

torch::Tensor avg_pool_backward(const torch::Tensor& grad, at::IntArrayRef input_shape, int64_t stride) {
  const Geometry g(input_shape, stride);
  auto input_grad = torch::empty(input_shape, grad.options(), at::MemoryFormat::ChannelsLast).zero_();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "avg_pool_backward", [&] {
    const int64_t image_size = g.height * g.width * g.channels;
    for_each_row<scalar_t>(g, true, [&](int64_t n, int64_t oh, int64_t offset, scalar_t* shares) {
      avg_pool_backward_row<scalar_t>(grad.data_ptr<scalar_t>() + offset,
                                      input_grad.data_ptr<scalar_t>() + n * image_size, shares, oh, g);
    });
  });
  return input_grad;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("max_pool_forward", &max_pool_forward);
  m.def("max_pool_backward", &max_pool_backward);
  m.def("avg_pool_forward", &avg_pool_forward);
  m.def("avg_pool_backward", &avg_pool_backward);
}
