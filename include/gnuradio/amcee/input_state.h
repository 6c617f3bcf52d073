/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_INPUT_STATE_H
#define INCLUDED_AMCEE_INPUT_STATE_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/block.h>

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

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_INPUT_STATE_H */
