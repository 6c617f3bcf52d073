/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/pybind11.h>

#include <gnuradio/amcee/input_state.h>

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
}
