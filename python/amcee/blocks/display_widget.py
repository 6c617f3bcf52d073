"""PyQt5 widgets of amcee.display (imported only when a display is made).

Plain QPainter drawing: no plotting library, nothing that needs an OpenGL
context, so it works under Xvfb and QT_QPA_PLATFORM=offscreen.
"""
import math

from PyQt5 import QtCore, QtGui, QtWidgets

RIGHT = QtGui.QColor("#2e9d57")
WRONG = QtGui.QColor("#e0663a")
UNKNOWN = QtGui.QColor("#4878b0")
GRID = QtGui.QColor("#d0d0d0")
TEXT = QtGui.QColor("#202020")
EXIT_COLORS = [QtGui.QColor(c) for c in ("#4c72b0", "#55a868", "#dd8452", "#8172b3",
                                         "#c44e52", "#937860", "#da8bc3", "#8c8c8c")]


def exit_color(k):
    return EXIT_COLORS[k % len(EXIT_COLORS)]


class HistogramView(QtWidgets.QWidget):
    """Bars per class: right (green) and wrong (orange) decisions, or unknown truth (blue)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(420, 200)
        self.snapshot = None

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        snap = self.snapshot
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.Antialiasing)
        p.fillRect(self.rect(), QtCore.Qt.white)
        p.setPen(TEXT)
        p.drawText(8, 16, "classes decided in the last frames")
        x = 8 + p.fontMetrics().horizontalAdvance("classes decided in the last frames") + 16
        for name, color in (("right", RIGHT), ("wrong", WRONG), ("truth unknown", UNKNOWN)):
            p.fillRect(x, 6, 12, 12, color)
            p.drawText(x + 16, 16, name)
            x += 16 + p.fontMetrics().horizontalAdvance(name) + 12
        if snap is None:
            return
        classes = snap["classes"]
        totals = snap["right"] + snap["wrong"] + snap["unknown"]
        top = max(1, int(totals.max()))
        left, right, y0, y1 = 8, self.width() - 8, 42, self.height() - 22
        slot = (right - left) / len(classes)
        current = snap["current"]["label"] if snap["current"] else None
        for i, name in enumerate(classes):
            x = left + i * slot + slot * 0.12
            w = slot * 0.76
            y = y1
            for count, color in ((snap["right"][i], RIGHT), (snap["wrong"][i], WRONG),
                                 (snap["unknown"][i], UNKNOWN)):
                h = (y1 - y0) * count / top
                p.fillRect(QtCore.QRectF(x, y - h, w, h), color)
                y -= h
            font = p.font()
            font.setBold(name == current)
            p.setFont(font)
            p.drawText(QtCore.QRectF(left + i * slot, y1 + 2, slot, 18), QtCore.Qt.AlignCenter, name)
            if totals[i]:
                p.drawText(QtCore.QRectF(left + i * slot, y - 16, slot, 16), QtCore.Qt.AlignCenter,
                           str(int(totals[i])))
        p.setPen(GRID)
        p.drawLine(left, int(y1), right, int(y1))


class ExitShareView(QtWidgets.QWidget):
    """One stacked column per refresh period: share of frames per exit."""

    def __init__(self, exit_names, parent=None):
        super().__init__(parent)
        self.setMinimumSize(420, 150)
        self.exit_names = list(exit_names)
        self.snapshot = None

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtCore.Qt.white)
        p.setPen(TEXT)
        title = "share of frames per exit, over time"
        p.drawText(8, 16, title)
        # Legend after the title: the model's exit names with their latest share.
        bins = self.snapshot["exit_bins"] if self.snapshot else []
        latest = next((b for b in reversed(bins) if b.sum()), None)
        x = 8 + p.fontMetrics().horizontalAdvance(title) + 16
        for k, name in enumerate(self.exit_names):
            p.fillRect(x, 6, 12, 12, exit_color(k))
            share = f" {100 * latest[k] / latest.sum():.0f}%" if latest is not None else ""
            p.drawText(x + 16, 16, name + share)
            x += 16 + p.fontMetrics().horizontalAdvance(name + share) + 12
        if not bins:
            return
        left, right, y0, y1 = 8, self.width() - 8, 26, self.height() - 6
        width = (right - left) / max(len(bins), 1)
        for j, counts in enumerate(bins):
            total = counts.sum()
            if not total:
                continue
            y = y1
            for k, count in enumerate(counts):
                h = (y1 - y0) * count / total
                p.fillRect(QtCore.QRectF(left + j * width, y - h, math.ceil(width), h), exit_color(k))
                y -= h


class DisplayWidget(QtWidgets.QWidget):
    """Header (current decision), class histogram and exit-share chart."""

    def __init__(self, title, exit_names, parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.exit_names = list(exit_names)
        self.decision = QtWidgets.QLabel("waiting for frames")
        self.decision.setTextFormat(QtCore.Qt.RichText)
        self.details = QtWidgets.QLabel("")
        self.histogram = HistogramView()
        self.exits = ExitShareView(self.exit_names)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.decision)
        layout.addWidget(self.details)
        layout.addWidget(self.histogram, stretch=3)
        layout.addWidget(self.exits, stretch=2)

    def show_snapshot(self, snap):
        self.histogram.snapshot = snap
        self.exits.snapshot = snap
        current = snap["current"]
        if current:
            exit_name = self.exit_names[current["exit"]]
            truth = ""
            if current["true_label"] is not None:
                mark = "&#10003;" if current["true_label"] == current["label"] else "&#10007;"
                snr = "" if math.isnan(current["snr"]) else f" at {current['snr']:.0f} dB"
                truth = f"&nbsp;&nbsp;<span style='font-size:16pt'>truth {current['true_label']}{snr} {mark}</span>"
            self.decision.setText(
                f"<span style='font-size:28pt; font-weight:bold'>{current['label']}</span>"
                f"&nbsp;&nbsp;<span style='font-size:20pt'>{100 * current['confidence']:.0f}%</span>"
                f"&nbsp;&nbsp;<span style='font-size:14pt'>exit {exit_name}</span>{truth}")
        accuracy = snap["window_accuracy"]
        self.details.setText(
            f"{snap['total']} frames, {snap['frames_per_second']:.0f} frames/s"
            + (f", accuracy over the window {100 * accuracy:.1f}%" if accuracy is not None else "")
            + (f", {snap['invalid']} invalid" if snap["invalid"] else "")
            + (f", {snap['mismatched']} from a model with other exits or classes" if snap["mismatched"] else ""))
        self.histogram.update()
        self.exits.update()
