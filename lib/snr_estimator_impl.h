/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_SNR_ESTIMATOR_IMPL_H
#define INCLUDED_AMCEE_SNR_ESTIMATOR_IMPL_H

#include <gnuradio/amcee/snr_estimator.h>
#include <vector>

namespace gr {
namespace amcee {

class snr_estimator_impl : public snr_estimator
{
public:
    explicit snr_estimator_impl(int vlen);

    int vlen() const override { return d_vlen; }

    bool start() override;

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;

private:
    const int d_vlen;
    const pmt::pmt_t d_key;
    pmt::pmt_t d_srcid = pmt::PMT_F;
    std::vector<double> d_snr_db;
};

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_SNR_ESTIMATOR_IMPL_H */
