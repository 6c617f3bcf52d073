/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <gnuradio/amcee/input_state.h>
#include <gnuradio/block_detail.h>
#include <gnuradio/buffer_reader.h>
#include <algorithm>
#include <limits>
#include <stdexcept>

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

void read_tag_numbers(gr::block* block,
                      const std::vector<pmt::pmt_t>& keys,
                      uint64_t first,
                      size_t n,
                      double* out)
{
    std::fill(out, out + n, std::numeric_limits<double>::quiet_NaN());
    gr::block_detail* detail = block->detail().get();
    if (detail == nullptr)
        throw std::runtime_error("read_tag_numbers: the block is not running");
    std::vector<int> rank(n, -1); // index in keys of the tag that set out[i]
    std::vector<gr::tag_t> tags;
    detail->get_tags_in_range(tags, 0, first, first + n, block->unique_id());
    for (const gr::tag_t& tag : tags) {
        if (!pmt::is_number(tag.value) || pmt::is_complex(tag.value))
            continue;
        for (size_t k = 0; k < keys.size(); k++) {
            const size_t i = static_cast<size_t>(tag.offset - first);
            if (pmt::eq(tag.key, keys[k]) && static_cast<int>(k) >= rank[i]) {
                out[i] = pmt::to_double(tag.value);
                rank[i] = static_cast<int>(k);
            }
        }
    }
}

} // namespace amcee
} // namespace gr
