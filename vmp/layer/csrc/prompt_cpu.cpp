// Motion prompt layer with the learnable sigmoid, as one CPU pass for forward and one for backward.
//
// Clip x (B, 3, T+1, H, W), float32, contiguous. Per pixel and time step t = 0..T-1:
//   G_t = w0 R_t + w1 G_t + w2 B_t            grayscale
//   u_t = scale (G_{t+1} - G_t) - shift       (scale is 0.225 for normalised clips, else 1)
//   A_t = sigmoid(slope u_t)                  attention, written to (B, T, H, W)
//   Z_t = A_t x_{t+1}                         prompts, written to (B, 3, T, H, W)
// Each task owns one clip and one block of pixels and walks through time, carrying the previous
// frame's grayscale (forward) and the previous step's gradient terms (backward) in small
// buffers, so every input element is read once and every output element written once. Backward
// recomputes A_t from x rather than storing it.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <vector>

namespace {

// Pixels per task: the backward buffers (5 x kBlock floats) stay in L1/L2.
constexpr int64_t kBlock = 1024;

struct Params {
  float w0, w1, w2, slope, shift, scale;
  float luma(float r, float g, float b) const { return w0 * r + w1 * g + w2 * b; }
};

struct Geometry {
  int64_t batch, steps, pixels, blocks;  // steps = T (prompts per clip), frames = T + 1
  Geometry(const at::Tensor& video)
      : batch(video.size(0)),
        steps(video.size(2) - 1),
        pixels(video.size(3) * video.size(4)),
        blocks((pixels + kBlock - 1) / kBlock) {}
  int64_t frame_stride() const { return pixels; }
  int64_t channel_stride() const { return (steps + 1) * pixels; }
};

inline float sigmoid(float s) { return 1.0f / (1.0f + std::exp(-s)); }

void check_video(const at::Tensor& video) {
  TORCH_CHECK(video.device().is_cpu(), "prompt_cpu: video must be on the CPU");
  TORCH_CHECK(video.scalar_type() == at::kFloat, "prompt_cpu: video must be float32");
  TORCH_CHECK(video.dim() == 5 && video.size(1) == 3 && video.size(2) >= 2,
              "prompt_cpu: video must have shape (B, 3, T+1, H, W) with T+1 >= 2");
  TORCH_CHECK(video.is_contiguous(), "prompt_cpu: video must be contiguous");
}

void check_grad(const std::optional<at::Tensor>& grad, at::IntArrayRef shape, const char* name) {
  if (!grad) return;
  TORCH_CHECK(grad->scalar_type() == at::kFloat && grad->is_contiguous() && grad->device().is_cpu(),
              "prompt_cpu: ", name, " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(grad->sizes() == shape, "prompt_cpu: ", name, " has shape ", grad->sizes(),
              ", expected ", shape);
}

std::vector<at::Tensor> forward(const at::Tensor& video, double slope, double shift,
                                std::array<double, 3> weights, double scale) {
  check_video(video);
  const Geometry geo(video);
  const Params p{float(weights[0]), float(weights[1]), float(weights[2]),
                 float(slope),      float(shift),      float(scale)};
  const int64_t T = geo.steps, P = geo.pixels, C = geo.channel_stride();
  auto prompts = at::empty({geo.batch, 3, T, video.size(3), video.size(4)}, video.options());
  auto attention = at::empty({geo.batch, T, video.size(3), video.size(4)}, video.options());
  const float* x = video.data_ptr<float>();
  float* z = prompts.data_ptr<float>();
  float* a = attention.data_ptr<float>();

  at::parallel_for(0, geo.batch * geo.blocks, 1, [&](int64_t begin, int64_t end) {
    std::array<float, kBlock> gray_prev;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / geo.blocks, p0 = (task % geo.blocks) * kBlock;
      const int64_t n = std::min(kBlock, P - p0);
      const float* clip = x + b * 3 * C + p0;
      for (int64_t i = 0; i < n; ++i)
        gray_prev[i] = p.luma(clip[i], clip[C + i], clip[2 * C + i]);
      for (int64_t t = 0; t < T; ++t) {
        const float* r = clip + (t + 1) * P;
        const float* g = r + C;
        const float* bl = g + C;
        float* zr = z + (b * 3 * T + t) * P + p0;
        float* zg = zr + T * P;
        float* zb = zg + T * P;
        float* at = a + (b * T + t) * P + p0;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          const float gray = p.luma(r[i], g[i], bl[i]);
          const float att = sigmoid(p.slope * (p.scale * (gray - gray_prev[i]) - p.shift));
          gray_prev[i] = gray;
          at[i] = att;
          zr[i] = att * r[i];
          zg[i] = att * g[i];
          zb[i] = att * bl[i];
        }
      }
    }
  });
  return {prompts, attention};
}

// Pointers of one backward call; a missing upstream gradient or video gradient is nullptr.
struct BackwardBuffers {
  const float* x;
  const float* g_prompts;
  const float* g_attention;
  float* g_video;
  double* sums;  // (tasks, 2): sum of dL/ds * u and of dL/ds over the task's pixels
};

// One task of backward, specialised on which gradients exist so the inner loop has no branches.
template <bool kPrompts, bool kAttention, bool kVideoGrad>
void backward_task(const Geometry& geo, const Params& p, const BackwardBuffers& buf, int64_t task) {
  // gray_prev: G_t; g_diff_prev: dL/dD_{t-1}; carry_c: dL/dx_c at frame t through Z_{t-1}.
  std::array<float, kBlock> gray_prev, g_diff_prev, carry_r, carry_g, carry_b;
  const int64_t T = geo.steps, P = geo.pixels, C = geo.channel_stride();
  const int64_t b = task / geo.blocks, p0 = (task % geo.blocks) * kBlock;
  const int64_t n = std::min(kBlock, P - p0);
  const float g_diff_per_s = p.slope * p.scale;  // d s / d (G_{t+1} - G_t)
  const float* clip = buf.x + b * 3 * C + p0;
  float* g_clip = kVideoGrad ? buf.g_video + b * 3 * C + p0 : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    gray_prev[i] = p.luma(clip[i], clip[C + i], clip[2 * C + i]);
    g_diff_prev[i] = carry_r[i] = carry_g[i] = carry_b[i] = 0.0f;
  }
  double sum_gs_u = 0.0, sum_gs = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const float* r = clip + (t + 1) * P;
    const float* g = r + C;
    const float* bl = g + C;
    const float* gzr = kPrompts ? buf.g_prompts + (b * 3 * T + t) * P + p0 : nullptr;
    const float* gzg = kPrompts ? gzr + T * P : nullptr;
    const float* gzb = kPrompts ? gzg + T * P : nullptr;
    const float* gat = kAttention ? buf.g_attention + (b * T + t) * P + p0 : nullptr;
    float* gxr = kVideoGrad ? g_clip + t * P : nullptr;
    float row_gs_u = 0.0f, row_gs = 0.0f;
#pragma omp simd reduction(+ : row_gs_u, row_gs)
    for (int64_t i = 0; i < n; ++i) {
      const float gray = p.luma(r[i], g[i], bl[i]);
      const float u = p.scale * (gray - gray_prev[i]) - p.shift;
      const float att = sigmoid(p.slope * u);
      gray_prev[i] = gray;
      float g_att = 0.0f;
      if constexpr (kAttention) g_att = gat[i];
      if constexpr (kPrompts) g_att += gzr[i] * r[i] + gzg[i] * g[i] + gzb[i] * bl[i];
      const float gs = g_att * att * (1.0f - att);
      row_gs_u += gs * u;
      row_gs += gs;
      if constexpr (kVideoGrad) {
        // dL/dG_t = dL/dD_{t-1} - dL/dD_t, spread over the channels by the luma weights.
        const float g_diff = gs * g_diff_per_s;
        const float g_gray = g_diff_prev[i] - g_diff;
        gxr[i] = p.w0 * g_gray + carry_r[i];
        gxr[C + i] = p.w1 * g_gray + carry_g[i];
        gxr[2 * C + i] = p.w2 * g_gray + carry_b[i];
        g_diff_prev[i] = g_diff;
        if constexpr (kPrompts) {
          carry_r[i] = gzr[i] * att;
          carry_g[i] = gzg[i] * att;
          carry_b[i] = gzb[i] * att;
        }
      }
    }
    sum_gs_u += row_gs_u;
    sum_gs += row_gs;
  }
  if constexpr (kVideoGrad) {  // the last frame: only D_{T-1} and Z_{T-1} reach it
    float* gxr = g_clip + T * P;
    for (int64_t i = 0; i < n; ++i) {
      gxr[i] = p.w0 * g_diff_prev[i] + carry_r[i];
      gxr[C + i] = p.w1 * g_diff_prev[i] + carry_g[i];
      gxr[2 * C + i] = p.w2 * g_diff_prev[i] + carry_b[i];
    }
  }
  buf.sums[2 * task] = sum_gs_u;
  buf.sums[2 * task + 1] = sum_gs;
}

template <bool kPrompts, bool kAttention, bool kVideoGrad>
void backward_all(const Geometry& geo, const Params& p, const BackwardBuffers& buf) {
  at::parallel_for(0, geo.batch * geo.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task)
      backward_task<kPrompts, kAttention, kVideoGrad>(geo, p, buf, task);
  });
}

template <bool kPrompts, bool kAttention>
void backward_dispatch(const Geometry& geo, const Params& p, const BackwardBuffers& buf) {
  if (buf.g_video)
    backward_all<kPrompts, kAttention, true>(geo, p, buf);
  else
    backward_all<kPrompts, kAttention, false>(geo, p, buf);
}

// Returns (gradient of the video, or an undefined tensor; [sum of dL/ds * u, sum of dL/ds]) for
// s = slope * u; the caller turns the sums into the gradients of slope and shift. Partial sums
// are kept per task and added in task order, so results do not depend on the thread count.
std::vector<at::Tensor> backward(const at::Tensor& video, const std::optional<at::Tensor>& g_prompts,
                                 const std::optional<at::Tensor>& g_attention, double slope,
                                 double shift, std::array<double, 3> weights, double scale,
                                 bool need_video_grad) {
  check_video(video);
  const Geometry geo(video);
  check_grad(g_prompts, {geo.batch, 3, geo.steps, video.size(3), video.size(4)}, "g_prompts");
  check_grad(g_attention, {geo.batch, geo.steps, video.size(3), video.size(4)}, "g_attention");
  TORCH_CHECK(g_prompts || g_attention, "prompt_cpu: backward needs g_prompts or g_attention");
  const Params p{float(weights[0]), float(weights[1]), float(weights[2]),
                 float(slope),      float(shift),      float(scale)};
  auto g_video = need_video_grad ? at::empty_like(video) : at::Tensor();
  auto partial = at::zeros({geo.batch * geo.blocks, 2}, video.options().dtype(at::kDouble));
  const BackwardBuffers buf{video.data_ptr<float>(),
                            g_prompts ? g_prompts->data_ptr<float>() : nullptr,
                            g_attention ? g_attention->data_ptr<float>() : nullptr,
                            need_video_grad ? g_video.data_ptr<float>() : nullptr,
                            partial.data_ptr<double>()};
  if (g_prompts && g_attention)
    backward_dispatch<true, true>(geo, p, buf);
  else if (g_prompts)
    backward_dispatch<true, false>(geo, p, buf);
  else
    backward_dispatch<false, true>(geo, p, buf);
  return {g_video, partial.sum(0)};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Motion prompt layer (learnable sigmoid): fused CPU forward and backward";
  m.def("forward", &forward, "prompts and attention of a (B, 3, T+1, H, W) float32 clip");
  m.def("backward", &backward, "gradient of the clip and the sums for slope and shift");
}
