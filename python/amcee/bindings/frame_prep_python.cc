/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <gnuradio/amcee/frame_prep.h>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

using complex_frames = py::array_t<gr_complex, py::array::c_style>;
using float_frames = py::array_t<float, py::array::c_style>;

// Runs one of the frame_prep functions over n frames without the GIL:
// (rows, valid), rows a [m, 2, L] view of a new [n, 2, L] array holding the m
// valid frames, normalised; valid bool [n].
template <typename T, typename Prepare>
py::tuple prepare(const T* frames, size_t n, size_t frame_len, Prepare prepare_frames)
{
    py::array_t<float> out({ n, size_t(2), frame_len });
    py::array_t<bool> valid(n);
    float* rows_out = out.mutable_data();
    uint8_t* valid_out = reinterpret_cast<uint8_t*>(valid.mutable_data());
    size_t rows;
    {
        py::gil_scoped_release release;
        rows = prepare_frames(frames, n, frame_len, rows_out, valid_out);
    }
    return py::make_tuple(out[py::slice(0, rows, 1)], valid);
}

py::tuple prepare_complex(complex_frames frames, size_t frame_len)
{
    if (frames.ndim() != 2 || static_cast<size_t>(frames.shape(1)) != frame_len)
        throw std::invalid_argument("complex frames must be [N, " +
                                    std::to_string(frame_len) + "]");
    return prepare(
        frames.data(), frames.shape(0), frame_len, gr::amcee::prepare_complex_frames);
}

py::tuple prepare_rml(float_frames frames, size_t frame_len)
{
    const bool flat = frames.ndim() == 2 && size_t(frames.shape(1)) == 2 * frame_len;
    const bool rows3 = frames.ndim() == 3 && frames.shape(1) == 2 &&
                       size_t(frames.shape(2)) == frame_len;
    if (!flat && !rows3)
        throw std::invalid_argument("real frames must be [N, 2, " +
                                    std::to_string(frame_len) + "] (I row, Q row)");
    return prepare(frames.data(), frames.shape(0), frame_len, gr::amcee::prepare_rml_frames);
}

} // namespace

void bind_frame_prep(py::module& m)
{
    m.def("prepare_complex_frames",
          &prepare_complex,
          py::arg("frames"),
          py::arg("frame_len"),
          "complex64 [N, L] frames -> (float32 [M, 2, L] L1-normalised valid "
          "frames, bool [N] valid mask); frames with NaN/Inf or all zero are left out.");
    m.def("prepare_rml_frames",
          &prepare_rml,
          py::arg("frames"),
          py::arg("frame_len"),
          "float32 [N, 2, L] or [N, 2L] frames (I row, Q row) -> the same as "
          "prepare_complex_frames.");
}
