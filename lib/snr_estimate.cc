/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// The method and why it was chosen are in include/gnuradio/amcee/snr_estimate.h;
// the measurements behind the choice in docs/snr-estimator.md.

#include <gnuradio/amcee/snr_estimate.h>
#include <gnuradio/fft/fft.h>
#include <gnuradio/fft/window.h>
#include <fftw3.h>
#include <volk/volk.h>
#include <volk/volk_alloc.hh>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace gr {
namespace amcee {

namespace {

//! Smoothing half-width as a fraction of the frame: 6 bins at L = 128, wide
//! enough that few smoothed noise bins pass NOISE_BIN_FACTOR times the mean,
//! narrow enough that the transition bands of a 2-samples-per-symbol RRC
//! signal leave ~L/4 bins of noise only.
constexpr double SMOOTH_HALF_WIDTH_FRACTION = 1.0 / 21.0;
//! Bins averaged into the floor, as a fraction of the frame (13 at L = 128).
constexpr double FLOOR_BINS_FRACTION = 0.1;
//! A smoothed bin below this multiple of the floor counts as noise-only.
//! Lower limits count fewer in-band bins as noise near 0 dB, at the price of
//! missing a few noise bins (1.5 against 2 and 2.5: docs/snr-estimator.md).
constexpr double NOISE_BIN_FACTOR = 1.5;
//! Fixed-point steps between the floor and the count of noise-only bins; it
//! settles in two or three.
constexpr int FLOOR_STEPS = 8;
//! SNR_EST_M2M4_MIN_DB as a power ratio.
const double M2M4_MIN_LINEAR = std::pow(10.0, SNR_EST_M2M4_MIN_DB / 10.0);
//! Frames of simulated unit white noise behind the floor's bias table.
constexpr int CALIBRATION_FRAMES = 2000;
constexpr uint64_t CALIBRATION_SEED = 20260101;

struct fftwf_buffer_deleter {
    void operator()(fftwf_complex* p) const { fftwf_free(p); }
};
using fftwf_buffer = std::unique_ptr<fftwf_complex[], fftwf_buffer_deleter>;

//! Everything one thread needs to estimate frames of one length.
class workspace
{
public:
    explicit workspace(size_t frame_len);
    ~workspace();
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;

    size_t frame_len() const { return d_len; }
    double estimate(const gr_complex* x);

private:
    void smoothed_spectrum(const gr_complex* x);
    void calibrate();

    size_t d_len, d_half_width, d_floor_bins;
    volk::vector<float> d_window; // Hann, scaled so that sum(w^2) = 1
    fftwf_buffer d_in, d_out;
    fftwf_plan d_plan;
    volk::vector<float> d_power;    // |x|^2, then |X_k|^2
    std::vector<float> d_padded;    // |X_k|^2 with h wrapped bins on each side
    // float: the loops over bins below vectorise; sums are kept in double.
    std::vector<float> d_smoothed; // smoothed periodogram
    std::vector<float> d_lowest;   // the k lowest smoothed bins, ascending
    //! d_bias[b]: mean of the d_floor_bins lowest smoothed bins of unit white
    //! noise when only b contiguous bins are noise (b >= d_floor_bins).
    std::shared_ptr<const std::vector<double>> d_bias;
};

// The bias table depends only on the frame length: one per length, shared by
// all threads.
std::mutex g_bias_mutex;
std::map<size_t, std::shared_ptr<const std::vector<double>>> g_bias;

workspace::workspace(size_t frame_len)
    : d_len(frame_len),
      d_half_width(std::max<size_t>(
          1, static_cast<size_t>(std::lround(frame_len * SMOOTH_HALF_WIDTH_FRACTION)))),
      d_floor_bins(std::max<size_t>(
          2, static_cast<size_t>(std::lround(frame_len * FLOOR_BINS_FRACTION)))),
      d_window(frame_len),
      d_in(fftwf_alloc_complex(frame_len)),
      d_out(fftwf_alloc_complex(frame_len)),
      d_power(frame_len),
      d_padded(frame_len + 2 * d_half_width),
      d_smoothed(frame_len),
      d_lowest(d_floor_bins)
{
    if (!d_in || !d_out)
        throw std::bad_alloc();
    const std::vector<float> hann = gr::fft::window::hann(static_cast<int>(frame_len));
    double energy = 0.0;
    for (float w : hann)
        energy += double(w) * w;
    for (size_t i = 0; i < frame_len; i++)
        d_window[i] = static_cast<float>(hann[i] / std::sqrt(energy));
    {
        // FFTW's planner is not thread-safe; GNU Radio's FFT blocks plan under
        // this mutex too.  FFTW_ESTIMATE: the plan, and so every estimate bit
        // for bit, does not depend on timing runs or a wisdom file.
        std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
        d_plan = fftwf_plan_dft_1d(
            static_cast<int>(frame_len), d_in.get(), d_out.get(), FFTW_FORWARD, FFTW_ESTIMATE);
    }
    if (!d_plan)
        throw std::runtime_error("estimate_snr_db: FFTW could not plan a " +
                                 std::to_string(frame_len) + "-point FFT");
    std::lock_guard<std::mutex> lock(g_bias_mutex);
    auto it = g_bias.find(frame_len);
    if (it == g_bias.end()) {
        calibrate();
        g_bias[frame_len] = d_bias;
    } else {
        d_bias = it->second;
    }
}

workspace::~workspace()
{
    std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
    fftwf_destroy_plan(d_plan);
}

void workspace::smoothed_spectrum(const gr_complex* x)
{
    gr_complex* in = reinterpret_cast<gr_complex*>(d_in.get());
    volk_32fc_32f_multiply_32fc(in, x, d_window.data(), d_len);
    fftwf_execute(d_plan);
    volk_32fc_magnitude_squared_32f(
        d_power.data(), reinterpret_cast<const gr_complex*>(d_out.get()), d_len);
    // Circular moving average over 2h+1 bins (the spectrum wraps at +-fs/2):
    // the bins with h wrapped bins on each side, then each output the sum of
    // its window, added window offset by window offset so that the loop
    // vectorises (a running sum would be one long chain of dependent adds).
    const size_t h = d_half_width, width = 2 * h + 1;
    float* padded = d_padded.data();
    std::copy(d_power.end() - h, d_power.end(), padded);
    std::copy(d_power.begin(), d_power.end(), padded + h);
    std::copy(d_power.begin(), d_power.begin() + h, padded + h + d_len);
    float* smoothed = d_smoothed.data();
    std::copy(padded, padded + d_len, smoothed);
    for (size_t i = 1; i < width; i++) {
        const float* shifted = padded + i;
        for (size_t j = 0; j < d_len; j++)
            smoothed[j] += shifted[j];
    }
    const float scale = 1.0f / width;
    for (size_t j = 0; j < d_len; j++)
        smoothed[j] *= scale;
}

void workspace::calibrate()
{
    // For every b, the expected mean of the k lowest among b contiguous
    // smoothed bins of unit white noise (contiguous: smoothing correlates
    // neighbours, and the noise-only bins of a signal are contiguous).
    const size_t k = d_floor_bins;
    std::vector<double> bias(d_len + 1, 0.0);
    std::mt19937_64 rng(CALIBRATION_SEED);
    std::normal_distribution<float> normal(0.0f, std::sqrt(0.5f));
    std::vector<gr_complex> noise(d_len);
    for (int f = 0; f < CALIBRATION_FRAMES; f++) {
        for (auto& v : noise)
            v = gr_complex(normal(rng), normal(rng));
        smoothed_spectrum(noise.data());
        std::priority_queue<double> lowest; // max-heap of the k lowest so far
        double lowest_sum = 0.0;
        for (size_t b = 1; b <= d_len; b++) {
            const double v = d_smoothed[b - 1];
            if (lowest.size() < k) {
                lowest.push(v);
                lowest_sum += v;
            } else if (v < lowest.top()) {
                lowest_sum += v - lowest.top();
                lowest.pop();
                lowest.push(v);
            }
            if (b >= k)
                bias[b] += lowest_sum / k;
        }
    }
    for (auto& v : bias)
        v /= CALIBRATION_FRAMES;
    d_bias = std::make_shared<const std::vector<double>>(std::move(bias));
}

double workspace::estimate(const gr_complex* x)
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    float power_sum = 0.0f, power_sq_sum = 0.0f;
    volk_32fc_magnitude_squared_32f(d_power.data(), x, d_len);
    volk_32f_accumulator_s32f(&power_sum, d_power.data(), d_len);
    volk_32f_x2_dot_prod_32f(&power_sq_sum, d_power.data(), d_power.data(), d_len);
    const double m2 = double(power_sum) / d_len, m4 = double(power_sq_sum) / d_len;
    if (!std::isfinite(m2) || !(m2 > 0.0))
        return nan;

    smoothed_spectrum(x);
    const size_t k = d_floor_bins;
    // The k lowest bins, kept sorted in d_lowest: most bins are above the
    // k-th lowest so far and cost one comparison (faster than nth_element,
    // which was the estimator's largest cost).
    float* lowest = d_lowest.data();
    std::copy(d_smoothed.begin(), d_smoothed.begin() + k, lowest);
    std::sort(lowest, lowest + k);
    for (size_t j = k; j < d_len; j++) {
        const float v = d_smoothed[j];
        if (v < lowest[k - 1]) {
            size_t i = k - 1;
            for (; i > 0 && lowest[i - 1] > v; i--)
                lowest[i] = lowest[i - 1];
            lowest[i] = v;
        }
    }
    double lowest_sum = 0.0;
    for (size_t i = 0; i < k; i++)
        lowest_sum += lowest[i];
    const double lowest_mean = lowest_sum / k;
    const std::vector<double>& bias = *d_bias;

    // Fixed point: the floor assumes b noise-only bins; b is the count of
    // bins below NOISE_BIN_FACTOR times the floor.  Starting from b = L (the
    // highest floor) the count can only settle downwards or stay.
    size_t b = d_len;
    double noise = lowest_mean / bias[b];
    for (int step = 0; step < FLOOR_STEPS; step++) {
        const float limit = static_cast<float>(NOISE_BIN_FACTOR * noise);
        int below = 0;
        for (size_t j = 0; j < d_len; j++)
            below += d_smoothed[j] < limit ? 1 : 0;
        const size_t next = std::clamp(static_cast<size_t>(below), k, d_len);
        if (next == b)
            break;
        b = next;
        noise = lowest_mean / bias[b];
    }
    // The noise power: the mean of the unsmoothed bins where the smoothed
    // spectrum is below the limit.  It uses all noise-only bins, not the k
    // lowest, so it spreads less; and near 0 dB, where in-band bins dip below
    // the limit, it counts them at their own level rather than scaling the
    // floor by a table made for fewer bins.
    const float limit = static_cast<float>(NOISE_BIN_FACTOR * noise);
    float noise_sum = 0.0f; // at most L positive terms of similar size
    int noise_bins = 0;
    for (size_t j = 0; j < d_len; j++) {
        const bool is_noise = d_smoothed[j] < limit;
        noise_sum += is_noise ? d_power[j] : 0.0f;
        noise_bins += is_noise ? 1 : 0;
    }
    if (static_cast<size_t>(noise_bins) >= k)
        noise = double(noise_sum) / noise_bins;

    double snr = noise > 0.0 ? (m2 - noise) / noise : std::numeric_limits<double>::infinity();
    // M2M4 for a constant-modulus signal in complex Gaussian noise:
    // S = sqrt(2 M2^2 - M4), N = M2 - S.
    const double d = 2.0 * m2 * m2 - m4;
    if (std::isfinite(m4) && d > 0.0) {
        const double s = std::sqrt(d), n = m2 - s;
        const double snr_m2m4 = n > 0.0 ? s / n : std::numeric_limits<double>::infinity();
        if (snr_m2m4 > snr && snr_m2m4 > M2M4_MIN_LINEAR)
            snr = snr_m2m4;
    }
    if (!(snr > 0.0))
        return SNR_EST_FLOOR_DB;
    return std::clamp(10.0 * std::log10(snr), SNR_EST_FLOOR_DB, SNR_EST_CEILING_DB);
}

} // namespace

void estimate_snr_db(const gr_complex* frames, size_t n, size_t frame_len, double* snr_db)
{
    if (frame_len < SNR_EST_MIN_FRAME_LEN)
        throw std::invalid_argument("estimate_snr_db: frame length must be at least " +
                                    std::to_string(SNR_EST_MIN_FRAME_LEN) + ", got " +
                                    std::to_string(frame_len));
    if (n == 0)
        return;
    thread_local std::unique_ptr<workspace> ws;
    if (!ws || ws->frame_len() != frame_len)
        ws = std::make_unique<workspace>(frame_len);
    for (size_t f = 0; f < n; f++)
        snr_db[f] = ws->estimate(frames + f * frame_len);
}

} // namespace amcee
} // namespace gr
