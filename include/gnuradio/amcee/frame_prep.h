/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_FRAME_PREP_H
#define INCLUDED_AMCEE_FRAME_PREP_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/gr_complex.h>
#include <cstddef>
#include <cstdint>

namespace gr {
namespace amcee {

/*!
 * \brief The network's input from a block of IQ frames, in one pass.
 *
 * Each frame becomes one row [2, L] (I row, then Q row) of \p out, divided by
 * the sum of its complex sample magnitudes (L1 normalisation, as RML22 is).
 * Frames with a NaN or Inf sample, or all zero, are not written: \p valid[i]
 * says which frames were, and the written rows are packed in input order.
 * The norm is summed in double precision so that an already normalised frame
 * stays put; values that would be subnormal after normalisation are flushed to
 * zero (subnormal inputs slow the convolutions several-fold on x86).
 *
 * \param frames   n frames of frame_len complex samples, back to back
 * \param n        number of frames
 * \param frame_len samples per frame (L)
 * \param out      room for n rows of 2 * frame_len floats
 * \param valid    n flags (1 = written to out)
 * \return         rows written (the number of valid frames)
 */
AMCEE_API size_t prepare_complex_frames(const gr_complex* frames,
                                        size_t n,
                                        size_t frame_len,
                                        float* out,
                                        uint8_t* valid);

/*!
 * \brief The same for frames already in the RML layout: n rows of 2 * frame_len
 * floats (I row, then Q row).
 */
AMCEE_API size_t prepare_rml_frames(
    const float* frames, size_t n, size_t frame_len, float* out, uint8_t* valid);

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_FRAME_PREP_H */
