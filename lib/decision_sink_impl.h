/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_DECISION_SINK_IMPL_H
#define INCLUDED_AMCEE_DECISION_SINK_IMPL_H

#include <gnuradio/amcee/decision_sink.h>
#include <map>
#include <mutex>

namespace gr {
namespace amcee {

class decision_sink_impl : public decision_sink
{
public:
    explicit decision_sink_impl(const std::vector<std::string>& classes);

    size_t count() const override;
    records_t records() const override;
    void reset() override;

private:
    void handle(const pmt::pmt_t& msg);
    void handle_batch(const pmt::pmt_t& msg);
    // One row; the caller holds d_mutex.
    void append(int64_t offset,
                int64_t cls,
                int64_t exit,
                float entropy,
                float confidence,
                const pmt::pmt_t& true_label,
                double snr,
                int64_t frame_index);

    std::map<std::string, int64_t> d_class_index;
    mutable std::mutex d_mutex;
    records_t d_rows;
    bool d_have_previous = false;
    std::string d_previous_label;
    bool d_previous_has_label = false;
    double d_previous_snr = 0.0;
};

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_DECISION_SINK_IMPL_H */
