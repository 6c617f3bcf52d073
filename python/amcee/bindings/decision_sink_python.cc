/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <gnuradio/amcee/decision_sink.h>

namespace py = pybind11;
using gr::amcee::decision_sink;

namespace {

template <typename T>
py::array_t<T> as_array(const std::vector<T>& v)
{
    return py::array_t<T>(v.size(), v.data());
}

py::dict records(const decision_sink& self)
{
    const decision_sink::records_t r = self.records();
    py::dict out;
    out["offset"] = as_array(r.offset);
    out["cls"] = as_array(r.cls);
    out["exit"] = as_array(r.exit);
    out["entropy"] = as_array(r.entropy);
    out["confidence"] = as_array(r.confidence);
    out["true_cls"] = as_array(r.true_cls);
    out["snr"] = as_array(r.snr);
    out["frame_index"] = as_array(r.frame_index);
    out["truth_changed"] = as_array(r.truth_changed).attr("astype")("bool");
    return out;
}

} // namespace

void bind_decision_sink(py::module& m)
{
    py::class_<decision_sink, gr::block, gr::basic_block, std::shared_ptr<decision_sink>>(
        m, "decision_sink")
        .def(py::init(&decision_sink::make), py::arg("classes"))
        .def("count", &decision_sink::count)
        .def("records",
             &records,
             "Every row so far as a dict of numpy arrays (copies), ordered as received.")
        .def("reset", &decision_sink::reset);
}
