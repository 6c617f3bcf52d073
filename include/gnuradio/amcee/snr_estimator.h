/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_SNR_ESTIMATOR_H
#define INCLUDED_AMCEE_SNR_ESTIMATOR_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/sync_block.h>

namespace gr {
namespace amcee {

/*!
 * \brief Tags every complex vector with its SNR estimate and passes it on.
 * \ingroup amcee
 *
 * Complex vectors of \p vlen in, the same vectors out.  Each output vector is
 * tagged at its offset with key \c snr_est, a PMT double: the estimate in dB
 * from estimate_snr_db() (snr_estimate.h), which uses that vector only.  A
 * vector with a NaN or Inf sample, or all zero, is tagged NaN.
 */
class AMCEE_API snr_estimator : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<snr_estimator> sptr;

    /*!
     * \param vlen samples per vector (the classifier's frame length), at
     *             least SNR_EST_MIN_FRAME_LEN
     */
    static sptr make(int vlen);

    virtual int vlen() const = 0;
};

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_SNR_ESTIMATOR_H */
