/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "decision_sink_impl.h"
#include "decision_keys.h"
#include "pmt_numbers.h"
#include <gnuradio/io_signature.h>
#include <cmath>
#include <limits>

namespace gr {
namespace amcee {

namespace {
const pmt::pmt_t IN_PORT = pmt::intern("in");
const pmt::pmt_t NOT_FOUND = pmt::PMT_NIL;

using namespace keys;

pmt::pmt_t field(const pmt::pmt_t& msg, const pmt::pmt_t& key)
{
    return pmt::dict_ref(msg, key, NOT_FOUND);
}

//! Field \p key of a batch message if it is a vector of n items of the
//! kind \p is_kind checks, else nil (missing, or not from the classifier).
template <typename Check>
pmt::pmt_t column(const pmt::pmt_t& msg, const pmt::pmt_t& key, size_t n, Check is_kind)
{
    const pmt::pmt_t v = field(msg, key);
    if (pmt::is_null(v) || !is_kind(v) || pmt::length(v) != n)
        return NOT_FOUND;
    return v;
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
    message_port_register_in(BATCH_PORT);
    set_msg_handler(BATCH_PORT, [this](const pmt::pmt_t& msg) { handle_batch(msg); });
}

void decision_sink_impl::handle(const pmt::pmt_t& msg)
{
    if (!pmt::is_dict(msg)) {
        d_logger->warn("ignoring a message that is not a PMT dict: {}",
                       pmt::write_string(msg).substr(0, 80));
        return;
    }
    std::lock_guard<std::mutex> guard(d_mutex);
    append(integer_or(field(msg, OFFSET), -1),
           integer_or(field(msg, CLASS), -1),
           integer_or(field(msg, EXIT), -1),
           static_cast<float>(real_or_nan(field(msg, ENTROPY))),
           static_cast<float>(real_or_nan(field(msg, CONFIDENCE))),
           field(msg, TRUE_LABEL),
           real_or_nan(field(msg, SNR)),
           integer_or(field(msg, FRAME_INDEX), -1));
}

void decision_sink_impl::handle_batch(const pmt::pmt_t& msg)
{
    const pmt::pmt_t cls = pmt::is_dict(msg) ? field(msg, CLASS) : NOT_FOUND;
    if (pmt::is_null(cls) || !pmt::is_s32vector(cls)) {
        d_logger->warn("ignoring a batch message that is not the classifier's: {}",
                       pmt::write_string(msg).substr(0, 80));
        return;
    }
    const size_t n = pmt::length(cls);
    const pmt::pmt_t exit = column(msg, EXIT, n, pmt::is_s32vector);
    const pmt::pmt_t entropy = column(msg, ENTROPY, n, pmt::is_f32vector);
    const pmt::pmt_t confidence = column(msg, CONFIDENCE, n, pmt::is_f32vector);
    const pmt::pmt_t snr = column(msg, SNR, n, pmt::is_f64vector);
    const pmt::pmt_t labels = column(msg, TRUE_LABEL, n, pmt::is_vector);
    const pmt::pmt_t index = column(msg, FRAME_INDEX, n, pmt::is_vector);
    const int64_t first = integer_or(field(msg, OFFSET), -1);
    const float nan = std::numeric_limits<float>::quiet_NaN();

    std::lock_guard<std::mutex> guard(d_mutex);
    for (size_t i = 0; i < n; i++)
        append(first < 0 ? -1 : first + static_cast<int64_t>(i),
               std::max<int64_t>(pmt::s32vector_ref(cls, i), -1), // ERROR counts as unclassified, as on "in"
               pmt::is_null(exit) ? -1 : pmt::s32vector_ref(exit, i),
               pmt::is_null(entropy) ? nan : pmt::f32vector_ref(entropy, i),
               pmt::is_null(confidence) ? nan : pmt::f32vector_ref(confidence, i),
               pmt::is_null(labels) ? NOT_FOUND : pmt::vector_ref(labels, i),
               pmt::is_null(snr) ? std::numeric_limits<double>::quiet_NaN()
                                 : pmt::f64vector_ref(snr, i),
               pmt::is_null(index) ? -1 : integer_or(pmt::vector_ref(index, i), -1));
}

void decision_sink_impl::append(int64_t offset,
                                int64_t cls,
                                int64_t exit,
                                float entropy,
                                float confidence,
                                const pmt::pmt_t& label,
                                double snr,
                                int64_t frame_index)
{
    const bool has_label = pmt::is_symbol(label);
    const std::string label_text = has_label ? pmt::symbol_to_string(label) : std::string();
    int64_t true_cls = -1;
    if (has_label) {
        auto it = d_class_index.find(label_text);
        if (it != d_class_index.end())
            true_cls = it->second;
    }
    // NaN != NaN: SNRs compare by value only where both exist.
    const bool same_snr = d_previous_snr == snr || (std::isnan(d_previous_snr) && std::isnan(snr));
    const bool changed = d_have_previous && (d_previous_has_label != has_label ||
                                             d_previous_label != label_text || !same_snr);
    d_have_previous = true;
    d_previous_has_label = has_label;
    d_previous_label = label_text;
    d_previous_snr = snr;

    d_rows.offset.push_back(offset);
    d_rows.cls.push_back(cls);
    d_rows.exit.push_back(exit);
    d_rows.entropy.push_back(entropy);
    d_rows.confidence.push_back(confidence);
    d_rows.true_cls.push_back(true_cls);
    d_rows.snr.push_back(static_cast<float>(snr));
    d_rows.frame_index.push_back(frame_index);
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
