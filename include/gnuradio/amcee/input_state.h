/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_INPUT_STATE_H
#define INCLUDED_AMCEE_INPUT_STATE_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/block.h>
#include <pmt/pmt.h>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gr {
namespace amcee {

/*!
 * \brief What waits on a running block's input 0: what its forecast() needs to
 * hold the scheduler back until a batch is in (see the classifier block).
 */
struct input_state {
    int available; //!< items ready to read
    bool done;     //!< the upstream block has finished: no more items will come
    int capacity;  //!< the most items the buffer can ever hold for this reader
};

//! The state of \p block's input 0 (all zero and done when it is not running).
AMCEE_API input_state read_input_state(gr::block* block);

/*!
 * \brief The numeric value each of \p n input items starting at absolute
 * offset \p first carries in a tag of one of \p keys, into \p out (NaN
 * where none): a tag of a later key wins over one of an earlier key on the
 * same item.  Read in one pass in C++ because a tag on every frame (an SNR
 * estimate) read through the Python tag API cost more than the frame's
 * whole per-frame path.
 */
AMCEE_API void read_tag_numbers(gr::block* block,
                                const std::vector<pmt::pmt_t>& keys,
                                uint64_t first,
                                size_t n,
                                double* out);

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_INPUT_STATE_H */
