/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "snr_estimator_impl.h"
#include <gnuradio/amcee/snr_estimate.h>
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <stdexcept>
#include <string>

namespace gr {
namespace amcee {

snr_estimator::sptr snr_estimator::make(int vlen)
{
    if (vlen < static_cast<int>(SNR_EST_MIN_FRAME_LEN))
        throw std::invalid_argument("snr_estimator: vlen must be at least " +
                                    std::to_string(SNR_EST_MIN_FRAME_LEN) + ", got " +
                                    std::to_string(vlen));
    return gnuradio::make_block_sptr<snr_estimator_impl>(vlen);
}

snr_estimator_impl::snr_estimator_impl(int vlen)
    : gr::sync_block("snr_estimator",
                     gr::io_signature::make(1, 1, sizeof(gr_complex) * vlen),
                     gr::io_signature::make(1, 1, sizeof(gr_complex) * vlen)),
      d_vlen(vlen),
      d_key(pmt::intern("snr_est"))
{
}

bool snr_estimator_impl::start()
{
    // At start, not in the constructor: GRC sets the block's alias after making it.
    d_srcid = pmt::intern(alias());
    return true;
}

int snr_estimator_impl::work(int noutput_items,
                             gr_vector_const_void_star& input_items,
                             gr_vector_void_star& output_items)
{
    const gr_complex* in = static_cast<const gr_complex*>(input_items[0]);
    gr_complex* out = static_cast<gr_complex*>(output_items[0]);
    const size_t n = static_cast<size_t>(noutput_items);
    std::copy(in, in + n * d_vlen, out);
    d_snr_db.resize(n);
    estimate_snr_db(in, n, d_vlen, d_snr_db.data());
    const uint64_t first = nitems_written(0);
    for (size_t i = 0; i < n; i++)
        add_item_tag(0, first + i, d_key, pmt::from_double(d_snr_db[i]), d_srcid);
    return noutput_items;
}

} // namespace amcee
} // namespace gr
