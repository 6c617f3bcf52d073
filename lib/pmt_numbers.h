/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// Numbers read from PMT values that may be missing or of another type
// (input tags and messages come from other blocks): one reading for the
// decision publisher and the decision sink.

#ifndef INCLUDED_AMCEE_PMT_NUMBERS_H
#define INCLUDED_AMCEE_PMT_NUMBERS_H

#include <pmt/pmt.h>
#include <cstdint>
#include <limits>

namespace gr {
namespace amcee {

//! A real number, or NaN for nil, complex and non-numbers.
inline double real_or_nan(const pmt::pmt_t& v)
{
    return pmt::is_number(v) && !pmt::is_complex(v) ? pmt::to_double(v)
                                                     : std::numeric_limits<double>::quiet_NaN();
}

//! An integer (long or uint64), or \p missing for anything else.
inline int64_t integer_or(const pmt::pmt_t& v, int64_t missing)
{
    if (pmt::is_uint64(v))
        return static_cast<int64_t>(pmt::to_uint64(v));
    if (pmt::is_integer(v))
        return pmt::to_long(v);
    return missing;
}

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_PMT_NUMBERS_H */
