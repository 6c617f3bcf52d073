/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_SNR_ESTIMATE_H
#define INCLUDED_AMCEE_SNR_ESTIMATE_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/gr_complex.h>
#include <cstddef>

namespace gr {
namespace amcee {

//! Lowest estimate returned: a frame whose signal power is not measurably above
//! its noise floor (a 128-sample frame cannot tell -20 dB from -30 dB).
constexpr double SNR_EST_FLOOR_DB = -30.0;
//! Highest estimate returned: the Hann window's leakage and float precision
//! bound what the noise floor of one frame can show.
constexpr double SNR_EST_CEILING_DB = 50.0;
//! Above this SNR (dB) the M2M4 estimate replaces the spectral one where it
//! is higher (step 3 below).
constexpr double SNR_EST_M2M4_MIN_DB = 8.0;
//! Shortest frame the estimator accepts (it needs a spectrum to find a floor in).
constexpr size_t SNR_EST_MIN_FRAME_LEN = 16;

/*!
 * \brief Per-frame SNR estimate in dB, from the frame alone.
 * \ingroup amcee
 *
 * The noise power is the floor of the frame's smoothed periodogram: RML22's
 * signals are oversampled (2 samples per symbol, roll-off 0.35; AM-DSB is
 * narrow), so some frequency bins hold noise only, whatever the envelope or
 * the modulation.  Steps, per frame of L samples:
 *
 * 1. Hann-windowed FFT, |X_k|^2 scaled so that white noise of power N gives
 *    bins of mean N; bins averaged over 2h+1 neighbours (h ~ L/21) so that a
 *    bin's spread is small enough to tell noise bins from signal bins.
 * 2. The noise-only bins: the floor is the mean of the k ~ L/10 lowest
 *    smoothed bins, divided by what that mean is for unit white noise when b
 *    contiguous bins are noise-only (a table measured once per L on simulated
 *    noise); b is the count of bins below 1.5 times the floor (a few
 *    fixed-point steps): a narrow AM-DSB frame and a frame of noise have
 *    b ~ L, a linear class ~ L/4.  The noise power N is then the mean of the
 *    unsmoothed bins whose smoothed value is below that limit: all noise-only
 *    bins count, so the estimate spreads less than the floor.
 * 3. Signals that fill the band (WBFM, GFSK, CPFSK) have no noise-only bins
 *    and the floor over-states the noise at high SNR; these are constant-
 *    envelope, where the M2M4 moment estimator (for a constant modulus) is
 *    accurate.  M2M4 is used where it gives a higher SNR than the floor and
 *    more than SNR_EST_M2M4_MIN_DB.  For any other envelope its signal power
 *    is sqrt(2 - kurtosis) times the true one (kurtosis E|s|^4 / (E|s|^2)^2
 *    >= 1), so on average it under-states the SNR and does not win where it
 *    is wrong; below SNR_EST_M2M4_MIN_DB its spread is larger than the floor's.
 * 4. SNR = (mean |x|^2 - N) / N, clamped to [SNR_EST_FLOOR_DB, SNR_EST_CEILING_DB].
 *
 * The estimate depends only on the frame (not on the scale: a frame times a
 * constant gives the same estimate, up to float rounding).  Measured accuracy
 * and cost: docs/snr-estimator.md.
 *
 * \param frames    n frames of frame_len complex samples, back to back
 * \param n         number of frames
 * \param frame_len samples per frame (L), at least SNR_EST_MIN_FRAME_LEN
 * \param snr_db    n estimates in dB; NaN for a frame with a NaN or Inf sample
 *                  or no power
 * \throws std::invalid_argument if frame_len < SNR_EST_MIN_FRAME_LEN
 *
 * Thread-safe: every calling thread has its own FFT plan and buffers.
 */
AMCEE_API void
estimate_snr_db(const gr_complex* frames, size_t n, size_t frame_len, double* snr_db);

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_SNR_ESTIMATE_H */
