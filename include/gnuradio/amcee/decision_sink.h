/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_AMCEE_DECISION_SINK_H
#define INCLUDED_AMCEE_DECISION_SINK_H

#include <gnuradio/amcee/api.h>
#include <gnuradio/block.h>
#include <cstdint>
#include <string>
#include <vector>

namespace gr {
namespace amcee {

/*!
 * \brief Records the classifier's decision messages, one row per message.
 * \ingroup amcee
 *
 * Connect the classifier's \c classification port to \c in, or its
 * \c batch port to \c batch (one message per work() call, the same rows).
 * Every PMT dict message on \c in becomes a row of columns (offset, class,
 * exit, entropy, confidence, true class, SNR, frame index, truth changed),
 * read with records() at any
 * time from any thread.  The messages are handled in C++: a Python handler
 * cost more per message than the network spent per frame.
 */
class AMCEE_API decision_sink : virtual public gr::block
{
public:
    typedef std::shared_ptr<decision_sink> sptr;

    //! Columns of the rows received so far, in the order received.
    struct records_t {
        std::vector<int64_t> offset;
        std::vector<int64_t> cls;
        std::vector<int64_t> exit;
        std::vector<float> entropy;
        std::vector<float> confidence;
        std::vector<int64_t> true_cls; //!< index of true_label in classes, -1 if absent or unknown
        std::vector<float> snr;         //!< NaN where the message has none
        std::vector<int64_t> frame_index;
        //! The true class or SNR differs from the previous row's: in a stream that
        //! switches signals on frame boundaries, the one frame that may hold two.
        std::vector<uint8_t> truth_changed;
    };

    /*!
     * \param classes class names in index order: true labels map to these indices
     */
    static sptr make(const std::vector<std::string>& classes);

    virtual size_t count() const = 0;
    virtual records_t records() const = 0;
    virtual void reset() = 0;
};

} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_DECISION_SINK_H */
