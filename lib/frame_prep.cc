/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <gnuradio/amcee/frame_prep.h>
#include <cfloat>
#include <cmath>

namespace gr {
namespace amcee {

namespace {

inline float flush_subnormal(float v) { return std::fabs(v) < FLT_MIN ? 0.0f : v; }

// One frame given as I and Q accessors: checks it, and writes the normalised
// I row and Q row to out.  Returns false (and writes nothing) for a frame that
// must not reach the network.
template <typename I, typename Q>
inline bool prepare_one(I i_at, Q q_at, size_t frame_len, float* out)
{
    double norm = 0.0;
    bool finite = true;
    for (size_t k = 0; k < frame_len; k++) {
        const double re = i_at(k), im = q_at(k);
        finite &= std::isfinite(re) && std::isfinite(im);
        norm += std::sqrt(re * re + im * im);
    }
    if (!finite || !(norm > 0.0))
        return false;
    float* i_row = out;
    float* q_row = out + frame_len;
    for (size_t k = 0; k < frame_len; k++) {
        i_row[k] = flush_subnormal(static_cast<float>(i_at(k) / norm));
        q_row[k] = flush_subnormal(static_cast<float>(q_at(k) / norm));
    }
    return true;
}

} // namespace

size_t prepare_complex_frames(
    const gr_complex* frames, size_t n, size_t frame_len, float* out, uint8_t* valid)
{
    size_t rows = 0;
    for (size_t f = 0; f < n; f++) {
        const gr_complex* x = frames + f * frame_len;
        const bool ok = prepare_one([x](size_t k) { return double(x[k].real()); },
                                    [x](size_t k) { return double(x[k].imag()); },
                                    frame_len,
                                    out + rows * 2 * frame_len);
        valid[f] = ok;
        rows += ok;
    }
    return rows;
}

size_t prepare_rml_frames(
    const float* frames, size_t n, size_t frame_len, float* out, uint8_t* valid)
{
    size_t rows = 0;
    for (size_t f = 0; f < n; f++) {
        const float* i_row = frames + f * 2 * frame_len;
        const float* q_row = i_row + frame_len;
        const bool ok = prepare_one([i_row](size_t k) { return double(i_row[k]); },
                                    [q_row](size_t k) { return double(q_row[k]); },
                                    frame_len,
                                    out + rows * 2 * frame_len);
        valid[f] = ok;
        rows += ok;
    }
    return rows;
}

} // namespace amcee
} // namespace gr
