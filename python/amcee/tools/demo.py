"""`amcee demo`: a live, hardware-free classification flowgraph with known truth.

demo_source (10 transmitters, truth switch, RML22 channel) -> [throttle] ->
[keep_m_in_n for a hop] -> stream_to_vector(the model's frame length) ->
[head] -> classifier ->
null sink, and classifier.classification -> classification_sink (and the live
display with ``--gui``).  The truth travels as ``label``/``snr`` stream tags
with the samples; segments are a whole number of hops long, so a change falls
on the first sample of a frame and only that frame (``truth_changed``) mixes
two signals.  It is left out of the accuracy.
"""
import sys
import threading
import time

from gnuradio import blocks, gr

from ..blocks.classification_sink import classification_sink
from ..blocks.classifier import classifier
from ..blocks.demo_source import DEMO_SNRS, demo_source
from ..blocks.schema import CLASSIFICATION_PORT
from ..data.synth.transmitters import CLASSES as TRANSMITTED_CLASSES
from .report_tables import group_summary, rows_per_value, table_lines


class demo_flowgraph(gr.top_block):
    """The demo's flowgraph; ``sink.records()`` holds every decision so far."""

    def __init__(self, model_path="", threshold=None, snrs=DEMO_SNRS, segment_frames=32,
                 frame_len=0, hop=0, variant="all", seed=1, max_frames=0,
                 realtime=False, max_batch=None):
        """``frame_len`` 0: the model's; ``hop`` 0: the frame length (frames back to back)."""
        gr.top_block.__init__(self, "amcee demo")
        if segment_frames < 2:
            raise ValueError(f"segment_frames must be >= 2, got {segment_frames}")
        self.classifier = classifier(model_path=model_path, threshold=threshold,
                                     frame_len=frame_len, max_batch=max_batch)
        frame_len = self.classifier.frame_len
        hop = hop or frame_len
        if hop < frame_len:
            raise ValueError(f"hop {hop} must be >= the frame length {frame_len} "
                             "(overlapping frames are not supported)")
        classes = self.classifier.classes()
        foreign = [name for name in classes if name not in TRANSMITTED_CLASSES]
        if foreign:
            raise ValueError(f"the demo transmits RML22's classes ({', '.join(TRANSMITTED_CLASSES)}); the model "
                             f"{self.classifier.model_path} also has {', '.join(foreign)}, which it cannot "
                             "transmit: try the model with `amcee replay` on a dataset of its classes")
        self.source = demo_source(classes=classes, snrs=snrs, segment_samples=segment_frames * hop,
                                  variant=variant, seed=seed)
        chain = [self.source]
        if realtime:
            chain.append(blocks.throttle(gr.sizeof_gr_complex, self.source.sample_rate, True))
        if hop > frame_len:
            # Keeps the first frame_len of every hop samples; tags move exactly
            # with the kept samples because segment starts are multiples of hop.
            chain.append(blocks.keep_m_in_n(gr.sizeof_gr_complex, frame_len, hop, 0))
        chain.append(blocks.stream_to_vector(gr.sizeof_gr_complex, frame_len))
        if max_frames:
            chain.append(blocks.head(gr.sizeof_gr_complex * frame_len, int(max_frames)))
        chain += [self.classifier, blocks.null_sink(gr.sizeof_gr_complex * frame_len)]
        self.connect(*chain)
        self.sink = classification_sink(classes)
        self.msg_connect(self.classifier, CLASSIFICATION_PORT, self.sink, "in")
        self.classes = classes
        self.exit_names = self.classifier.exit_names()


def summarize(records, classes, exit_names, elapsed):
    """Per class / per SNR frames, accuracy and exit shares (transition frames left out)."""
    valid = records["exit"] >= 0
    scored = valid & ~records["truth_changed"] & (records["true_cls"] >= 0)
    decisions = (records["cls"], records["true_cls"], records["exit"])

    def group(mask):
        return group_summary(*decisions, mask, len(exit_names))

    per_class = [dict(group(scored & (records["true_cls"] == i)), **{"class": name})
                 for i, name in enumerate(classes)]
    per_snr = rows_per_value(records["snr"], "snr", *decisions, scored, len(exit_names))
    total = len(records["exit"])
    return {
        "frames": total,
        "scored_frames": int(scored.sum()),
        "transition_frames": int((valid & records["truth_changed"]).sum()),
        "invalid_frames": int((~valid).sum()),
        "seconds": float(elapsed),
        "frames_per_second": float(total / elapsed) if elapsed > 0 else 0.0,
        "exit_names": list(exit_names),
        "all": group(scored),
        "per_class": per_class,
        "per_snr": per_snr,
    }


def format_table(summary, key="class", rows=None):
    """A compact text table of per-class (or per-SNR) accuracy and exit shares."""
    rows = summary["per_class"] if rows is None else rows
    lines = table_lines(rows, key, summary["exit_names"], summary["all"])
    lines.append(f"{summary['frames']} frames in {summary['seconds']:.1f} s: "
                 f"{summary['frames_per_second']:.0f} frames/s; exit shares in % of frames; "
                 f"{summary['transition_frames']} frames at a modulation change not scored")
    return "\n".join(lines)


def progress_line(summary):
    """One line of a run so far: frames, rate, accuracy and exit shares."""
    shares = ", ".join(f"{name} {100 * share:.1f} %"
                       for name, share in zip(summary["exit_names"], summary["all"]["exit_share"]))
    accuracy = summary["all"]["accuracy"]
    return (f"demo: {summary['frames']} frames in {summary['seconds']:.0f} s "
            f"({summary['frames_per_second']:.0f} frames/s), accuracy "
            + ("-" if accuracy is None else f"{100 * accuracy:.1f} %") + f"; exits {shares}")


#: Seconds between progress lines when the live view is not on a terminal.
PROGRESS_LINE_SECONDS = 5.0


class LiveTable:
    """The live view of a run.  On a terminal: the table, redrawn in place at
    every update.  Elsewhere (a pipe, a log file): one progress line every
    ``line_seconds`` of the run, since a whole table per update floods a log;
    the caller prints the final summary."""

    def __init__(self, stream=sys.stdout, line_seconds=PROGRESS_LINE_SECONDS):
        self.stream = stream
        self.line_seconds = float(line_seconds)
        self._tty = hasattr(stream, "isatty") and stream.isatty()
        self._lines = 0  # lines of the table on screen
        self._next_line_at = self.line_seconds

    def show(self, summary, final=False):
        """Update the view with ``summary`` (demo.summarize); ``final``: the
        run has ended (the terminal shows the table if it has not yet)."""
        if self._tty:
            if final and self._lines:
                return
            text = format_table(summary)
            if self._lines:
                self.stream.write(f"\x1b[{self._lines}F\x1b[J")  # back to the table's first line
            self.stream.write(text + "\n")
            self._lines = text.count("\n") + 1
        elif not final and summary["seconds"] >= self._next_line_at:
            self.stream.write(progress_line(summary) + "\n")
            self._next_line_at = summary["seconds"] + self.line_seconds
        self.stream.flush()


def run_headless(fg, seconds=0.0, refresh=1.0, table=None):
    """Run ``fg`` until ``seconds`` pass (0 = until it ends, e.g. after max_frames),
    updating ``table`` (a LiveTable) every ``refresh`` seconds; returns the final summary."""
    finished = threading.Event()
    start = time.monotonic()
    fg.start()
    waiter = threading.Thread(target=lambda: (fg.wait(), finished.set()), daemon=True)
    waiter.start()
    try:
        while not finished.wait(timeout=refresh):
            elapsed = time.monotonic() - start
            if table is not None:
                table.show(summarize(fg.sink.records(), fg.classes, fg.exit_names, elapsed))
            if seconds and elapsed >= seconds:
                break
    finally:
        fg.stop()
        finished.wait()
    summary = summarize(fg.sink.records(), fg.classes, fg.exit_names, time.monotonic() - start)
    if table is not None:  # a run shorter than one refresh still shows its table
        table.show(summary, final=True)
    return summary


def run_gui(fg, seconds=0.0, refresh=1.0, table=None, screenshot=None, window=500):
    """As :func:`run_headless`, with the live display in a Qt window."""
    from PyQt5 import QtCore, QtWidgets

    from ..blocks.display import display

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    view = display(classes=fg.classes, num_exits=len(fg.exit_names), exit_names=fg.exit_names,
                   window=window, title="gr-amcee demo: early-exit modulation classification")
    fg.msg_connect(fg.classifier, CLASSIFICATION_PORT, view, "classification")
    widget = view.widget()
    widget.resize(900, 620)
    widget.show()
    start = time.monotonic()
    finished = threading.Event()

    def on_tick():
        elapsed = time.monotonic() - start
        if table is not None:
            table.show(summarize(fg.sink.records(), fg.classes, fg.exit_names, elapsed))
        if finished.is_set() or (seconds and elapsed >= seconds) or not widget.isVisible():
            if screenshot:
                view.refresh()
                widget.grab().save(screenshot)
            app.quit()

    timer = QtCore.QTimer()
    timer.timeout.connect(on_tick)
    timer.start(int(refresh * 1000))
    fg.start()
    threading.Thread(target=lambda: (fg.wait(), finished.set()), daemon=True).start()
    app.exec_()
    fg.stop()
    finished.wait()
    return summarize(fg.sink.records(), fg.classes, fg.exit_names, time.monotonic() - start)

