/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <gnuradio/amcee/input_state.h>
#include <string>
#include <vector>

namespace py = pybind11;

void bind_input_state(py::module& m)
{
    m.def(
        "read_input_state",
        [](gr::block* block) {
            const gr::amcee::input_state s = gr::amcee::read_input_state(block);
            return py::make_tuple(s.available, s.done, s.capacity);
        },
        py::arg("block"),
        "(items available, upstream done, capacity) of a running block's input 0.");

    m.def(
        "read_tag_numbers",
        [](gr::block* block, const std::vector<std::string>& keys, uint64_t first, size_t n) {
            std::vector<pmt::pmt_t> symbols;
            for (const auto& key : keys)
                symbols.push_back(pmt::intern(key));
            py::array_t<double> out(n);
            gr::amcee::read_tag_numbers(block, symbols, first, n, out.mutable_data());
            return out;
        },
        py::arg("block"),
        py::arg("keys"),
        py::arg("first"),
        py::arg("n"),
        "float64 [n]: the number tagged on each of n items of input 0 from absolute offset first "
        "under one of keys (a later key wins), NaN where none.");
}
