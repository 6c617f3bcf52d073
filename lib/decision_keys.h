/*
 * Copyright 2026 gr-amcee authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// The keys of the classifier's decision messages and the name of its batch
// port: one list for the decision publisher that writes them and the
// decision sink that reads them (python/amcee/blocks/schema.py is the
// Python side).  Interned once: pmt::intern looks a name up under a global
// lock.

#ifndef INCLUDED_AMCEE_DECISION_KEYS_H
#define INCLUDED_AMCEE_DECISION_KEYS_H

#include <pmt/pmt.h>

namespace gr {
namespace amcee {
namespace keys {

inline const pmt::pmt_t LABEL = pmt::intern("label");
inline const pmt::pmt_t CLASS = pmt::intern("class");
inline const pmt::pmt_t CONFIDENCE = pmt::intern("confidence");
inline const pmt::pmt_t ENTROPY = pmt::intern("entropy");
inline const pmt::pmt_t EXIT = pmt::intern("exit");
inline const pmt::pmt_t PROBS = pmt::intern("probs");
inline const pmt::pmt_t OFFSET = pmt::intern("offset");
inline const pmt::pmt_t SNR = pmt::intern("snr");
inline const pmt::pmt_t TRUE_LABEL = pmt::intern("true_label");
inline const pmt::pmt_t FRAME_INDEX = pmt::intern("frame_index");
inline const pmt::pmt_t BATCH_PORT = pmt::intern("batch");

} // namespace keys
} // namespace amcee
} // namespace gr

#endif /* INCLUDED_AMCEE_DECISION_KEYS_H */
