/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <gnuradio/amcee/decision_publisher.h>
#include <stdexcept>

namespace py = pybind11;
using gr::amcee::decision_publisher;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

void publish(decision_publisher& self,
             gr::block* block,
             uint64_t first,
             carray<int64_t> classes,
             carray<int64_t> exits,
             carray<float> probs,
             carray<float> entropy)
{
    const size_t n = classes.size();
    if (size_t(exits.size()) != n || size_t(entropy.size()) != n)
        throw std::invalid_argument("publish: classes, exits and entropy differ in length");
    if (probs.ndim() != 2 || size_t(probs.shape(0)) != n ||
        size_t(probs.shape(1)) != self.num_classes())
        throw std::invalid_argument("publish: probs must be [N, num_classes]");
    py::gil_scoped_release release;
    self.publish(
        block, first, n, classes.data(), exits.data(), probs.data(), entropy.data());
}

} // namespace

void bind_decision_publisher(py::module& m)
{
    py::class_<decision_publisher>(m, "decision_publisher")
        .def(py::init<const std::vector<std::string>&, int>(),
             py::arg("classes"),
             py::arg("num_exits"))
        .def("publish",
             &publish,
             py::arg("block"),
             py::arg("first"),
             py::arg("classes"),
             py::arg("exits"),
             py::arg("probs"),
             py::arg("entropy"),
             "Tag and publish the decisions of n frames starting at absolute offset "
             "first (one call per work()).")
        .def("reset", &decision_publisher::reset)
        .def("set_stream_tags",
             &decision_publisher::set_stream_tags,
             py::arg("on"),
             "Whether publish() adds the amc stream tags (the messages are unaffected).")
        .def("stream_tags", &decision_publisher::stream_tags)
        .def_property_readonly("num_classes", &decision_publisher::num_classes)
        .def_property_readonly("num_exits", &decision_publisher::num_exits)
        .def_property_readonly_static(
            "INVALID", [](py::object) { return decision_publisher::INVALID; })
        .def_property_readonly_static(
            "ERROR", [](py::object) { return decision_publisher::ERROR; });
}
