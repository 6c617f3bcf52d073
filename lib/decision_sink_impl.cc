/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "decision_sink_impl.h"
#include <gnuradio/io_signature.h>
#include <cmath>
#include <limits>

namespace gr {
namespace amcee {

namespace {
const pmt::pmt_t IN_PORT = pmt::intern("in");
const pmt::pmt_t NOT_FOUND = pmt::PMT_NIL;

pmt::pmt_t field(const pmt::pmt_t& msg, const char* key)
{
    return pmt::dict_ref(msg, pmt::intern(key), NOT_FOUND);
}

int64_t to_int(const pmt::pmt_t& v, int64_t missing)
{
    if (pmt::is_null(v))
        return missing;
    if (pmt::is_uint64(v))
        return static_cast<int64_t>(pmt::to_uint64(v));
    if (pmt::is_integer(v))
        return pmt::to_long(v);
    return missing;
}

double to_real(const pmt::pmt_t& v)
{
    return pmt::is_number(v) && !pmt::is_complex(v) ? pmt::to_double(v)
                                                     : std::numeric_limits<double>::quiet_NaN();
}
} // namespace

decision_sink::sptr decision_sink::make(const std::vector<std::string>& classes)
{
    return gnuradio::make_block_sptr<decision_sink_impl>(classes);
}

decision_sink_impl::decision_sink_impl(const std::vector<std::string>& classes)
    : gr::block("amcee_classification_sink",
                gr::io_signature::make(0, 0, 0),
                gr::io_signature::make(0, 0, 0))
{
    for (size_t i = 0; i < classes.size(); i++)
        d_class_index[classes[i]] = static_cast<int64_t>(i);
    message_port_register_in(IN_PORT);
    set_msg_handler(IN_PORT, [this](const pmt::pmt_t& msg) { handle(msg); });
}

void decision_sink_impl::handle(const pmt::pmt_t& msg)
{
    if (!pmt::is_dict(msg)) {
        d_logger->warn("ignoring a message that is not a PMT dict: {}",
                       pmt::write_string(msg).substr(0, 80));
        return;
    }
    const pmt::pmt_t label = field(msg, "true_label");
    const bool has_label = pmt::is_symbol(label);
    const std::string label_text = has_label ? pmt::symbol_to_string(label) : std::string();
    const double snr = to_real(field(msg, "snr"));
    int64_t true_cls = -1;
    if (has_label) {
        auto it = d_class_index.find(label_text);
        if (it != d_class_index.end())
            true_cls = it->second;
    }

    std::lock_guard<std::mutex> guard(d_mutex);
    // NaN != NaN: SNRs compare by value only where both exist.
    const bool same_snr = d_previous_snr == snr || (std::isnan(d_previous_snr) && std::isnan(snr));
    const bool changed = d_have_previous && (d_previous_has_label != has_label ||
                                             d_previous_label != label_text || !same_snr);
    d_have_previous = true;
    d_previous_has_label = has_label;
    d_previous_label = label_text;
    d_previous_snr = snr;

    d_rows.offset.push_back(to_int(field(msg, "offset"), -1));
    d_rows.cls.push_back(to_int(field(msg, "class"), -1));
    d_rows.exit.push_back(to_int(field(msg, "exit"), -1));
    d_rows.entropy.push_back(static_cast<float>(to_real(field(msg, "entropy"))));
    d_rows.confidence.push_back(static_cast<float>(to_real(field(msg, "confidence"))));
    d_rows.true_cls.push_back(true_cls);
    d_rows.snr.push_back(static_cast<float>(snr));
    d_rows.frame_index.push_back(to_int(field(msg, "frame_index"), -1));
    d_rows.truth_changed.push_back(changed);
}

size_t decision_sink_impl::count() const
{
    std::lock_guard<std::mutex> guard(d_mutex);
    return d_rows.offset.size();
}

decision_sink::records_t decision_sink_impl::records() const
{
    std::lock_guard<std::mutex> guard(d_mutex);
    return d_rows;
}

void decision_sink_impl::reset()
{
    std::lock_guard<std::mutex> guard(d_mutex);
    d_rows = records_t();
    d_have_previous = false;
}

} // namespace amcee
} // namespace gr
