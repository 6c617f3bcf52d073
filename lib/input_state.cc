/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <gnuradio/amcee/input_state.h>
#include <gnuradio/block_detail.h>
#include <gnuradio/buffer_reader.h>

namespace gr {
namespace amcee {

input_state read_input_state(gr::block* block)
{
    gr::block_detail_sptr detail = block->detail();
    if (!detail || detail->ninputs() < 1)
        return { 0, true, 0 };
    gr::buffer_reader_sptr reader = detail->input(0);
    gr::thread::scoped_lock guard(*reader->mutex());
    return { reader->items_available(),
             reader->done(),
             reader->max_possible_items_available() };
}

} // namespace amcee
} // namespace gr
