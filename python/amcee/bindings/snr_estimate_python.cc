/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <gnuradio/amcee/snr_estimate.h>
#include <gnuradio/amcee/snr_estimator.h>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

// No forcecast: a float or complex128 array is a caller's mistake worth
// naming, not something to convert silently.
py::array_t<double> estimate(py::array frames)
{
    if (!frames.dtype().is(py::dtype::of<gr_complex>()))
        throw py::type_error("estimate_snr_db: frames must be complex64, got " +
                             std::string(py::str(frames.dtype())));
    if (frames.ndim() != 2)
        throw py::value_error("estimate_snr_db: frames must be 2-D [n, L], got " +
                              std::to_string(frames.ndim()) + "-D");
    const size_t n = frames.shape(0), frame_len = frames.shape(1);
    if (frame_len < gr::amcee::SNR_EST_MIN_FRAME_LEN)
        throw py::value_error("estimate_snr_db: frames must have at least " +
                              std::to_string(gr::amcee::SNR_EST_MIN_FRAME_LEN) +
                              " samples, got " + std::to_string(frame_len));
    // A C-contiguous copy only if the caller passed a strided view.
    auto contiguous = py::array_t<gr_complex, py::array::c_style>::ensure(frames);
    py::array_t<double> out(n);
    const gr_complex* in = contiguous.data();
    double* snr = out.mutable_data();
    {
        py::gil_scoped_release release;
        gr::amcee::estimate_snr_db(in, n, frame_len, snr);
    }
    return out;
}

} // namespace

void bind_snr_estimate(py::module& m)
{
    m.def("estimate_snr_db",
          &estimate,
          py::arg("frames"),
          "complex64 [n, L] frames -> float64 [n] SNR estimates in dB, each from its "
          "own frame (NaN for a frame with NaN/Inf or no power); see snr_estimate.h.");
    m.attr("SNR_EST_FLOOR_DB") = gr::amcee::SNR_EST_FLOOR_DB;
    m.attr("SNR_EST_CEILING_DB") = gr::amcee::SNR_EST_CEILING_DB;
    m.attr("SNR_EST_M2M4_MIN_DB") = gr::amcee::SNR_EST_M2M4_MIN_DB;
    m.attr("SNR_EST_MIN_FRAME_LEN") = gr::amcee::SNR_EST_MIN_FRAME_LEN;

    using gr::amcee::snr_estimator;
    py::class_<snr_estimator,
               gr::sync_block,
               gr::block,
               gr::basic_block,
               std::shared_ptr<snr_estimator>>(m, "snr_estimator")
        // 128: RML22's frame length, the classifier's (and the GRC block's) default.
        .def(py::init(&snr_estimator::make), py::arg("vlen") = 128)
        .def("vlen", &snr_estimator::vlen);
}
