/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_DECISION_PUBLISHER_H
#define INCLUDED_AMCEE_DECISION_PUBLISHER_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/block.h>
#include <pmt/pmt.h>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gr {
namespace amcee {

/*!
 * \brief The classifier's per-frame output: one stream tag and one or two
 * messages per frame, written from the engine's arrays in one call per work().
 *
 * For frame i (absolute offset first + i) it adds the stream tag \c amc on
 * output 0 with the PMT dict {label, class, confidence, entropy, exit, probs}
 * and publishes the same dict plus \c offset and the input tags in force
 * (\c snr, \c label as \c true_label, \c frame_index) on the port of the exit
 * that decided it and on \c classification.  Frames that were not classified
 * (class INVALID or ERROR) carry that label, exit -1, and go to
 * \c classification only.
 *
 * Input tags are sticky: a value holds until the next tag with the same key,
 * across calls, until reset().
 *
 * When \c batch is subscribed, each call also publishes there one PMT dict
 * for all its n frames: \c offset (uint64, the first frame's), \c class and
 * \c exit (s32vector; class INVALID or ERROR and exit -1 where a frame was
 * not classified), \c confidence, \c entropy (f32vector) and \c probs
 * (f32vector, n rows of num_classes), and where any frame of the call has
 * them \c snr (f64vector, NaN where none), \c true_label and \c frame_index
 * (PMT vectors of the input tags' values, nil where none).  A per-frame
 * dict costs a few dozen small PMT objects; a batch costs a handful per call.
 */
class AMCEE_API decision_publisher
{
public:
    //! Class code of a frame that never reached the network (NaN/Inf/all zero).
    static constexpr int64_t INVALID = -1;
    //! Class code of a frame whose network call failed.
    static constexpr int64_t ERROR = -2;

    /*!
     * \param classes    class names in the model's index order
     * \param num_exits  exits of the model (ports exit0 .. exit{K-1})
     */
    decision_publisher(const std::vector<std::string>& classes, int num_exits);

    /*!
     * Tag and publish n frames whose first item is at absolute offset \p first
     * of \p block's output 0 (and input 0: the block is a sync block).
     *
     * \param classes   n class indices, or INVALID / ERROR
     * \param exits     n exit indices (ignored where the class is < 0)
     * \param probs     n rows of num_classes probabilities
     * \param entropy   n entropies
     */
    void publish(gr::block* block,
                 uint64_t first,
                 size_t n,
                 const int64_t* classes,
                 const int64_t* exits,
                 const float* probs,
                 const float* entropy);

    //! Forget the input tags seen so far (a new run of the flowgraph).
    void reset();

    //! Whether publish() adds the \c amc stream tags (default true).
    void set_stream_tags(bool on) { d_stream_tags = on; }
    bool stream_tags() const { return d_stream_tags; }

    size_t num_classes() const { return d_labels.size(); }
    int num_exits() const { return static_cast<int>(d_exit_ports.size()); }

private:
    std::vector<pmt::pmt_t> d_labels;
    std::vector<pmt::pmt_t> d_exit_ports;
    std::vector<pmt::pmt_t> d_exit_values;
    std::vector<pmt::pmt_t> d_class_values;
    pmt::pmt_t d_all_port;
    pmt::pmt_t d_batch_port;
    bool d_stream_tags = true;
    pmt::pmt_t d_invalid_label, d_error_label, d_minus_one;
    // The (label, class, exit) entries of a decision's dict, one shared list
    // per class and exit (index class * num_exits + exit), then invalid, error.
    std::vector<pmt::pmt_t> d_decision_tails;

    // Input tag key -> message key, and the values in force.
    std::vector<std::pair<pmt::pmt_t, pmt::pmt_t>> d_truth_keys;
    std::vector<pmt::pmt_t> d_truth_values; // PMT_NIL = not seen
    std::vector<gr::tag_t> d_tags;          // reused between calls
    std::vector<float> d_probs;             // one frame's probabilities, reused
    std::vector<std::pair<pmt::pmt_t, pmt::pmt_t>> d_outbox; // (port, message) of one call
    // One call's truth values per frame, for the batch message.
    std::vector<double> d_batch_snr;
    std::vector<pmt::pmt_t> d_batch_label;
    std::vector<pmt::pmt_t> d_batch_index;
    std::vector<int32_t> d_batch_class, d_batch_exit;
    std::vector<float> d_batch_confidence;

    pmt::pmt_t batch_message(uint64_t first,
                             size_t n,
                             const float* probs,
                             const float* entropy,
                             bool has_snr,
                             bool has_label,
                             bool has_index) const;
};

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_DECISION_PUBLISHER_H */
