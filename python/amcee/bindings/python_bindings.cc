/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// The compiled part of gr-amcee, written by hand (gr_modtool bind needs a
// castxml that parses this compiler's headers).  The classifier block calls
// it once per work(): frame preparation, then tags and messages.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

void bind_frame_prep(py::module& m);
void bind_decision_publisher(py::module& m);
void bind_input_state(py::module& m);
void bind_decision_sink(py::module& m);
void bind_snr_estimate(py::module& m);

PYBIND11_MODULE(amcee_python, m)
{
    // gr::block and friends are registered by GNU Radio's own bindings: load
    // them first, so that a block passed in from Python converts to gr::block*.
    py::module::import("gnuradio.gr");

    bind_frame_prep(m);
    bind_decision_publisher(m);
    bind_input_state(m);
    bind_decision_sink(m);
    bind_snr_estimate(m);
}
