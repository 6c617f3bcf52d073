"""Source block: replays a labelled dataset as vectors, each tagged with its truth."""
import numpy as np
import pmt
from gnuradio import gr

from ..data.dataset import split_indices
from ..data.files import dataset_frame_length, load_dataset
from ..frames import LAYOUTS, check_layout, frames_to_vectors, vector_length
from .schema import FRAME_INDEX_TAG, LABEL_TAG, SNR_TAG


class dataset_source(gr.sync_block):
    """Replays the frames of a dataset file, one vector per frame.

    ``layout="complex"`` gives complex64 vectors of L samples; ``"rml"`` gives
    float32 vectors of 2L values (I row then Q row). Every vector carries the tags
    ``label`` (symbol, class name), ``snr`` (double, dB) and ``frame_index``
    (uint64, the frame's index in the file, ``split`` or not). The stream ends after
    the last frame unless ``repeat``; ``shuffle`` reorders every pass from ``seed``.
    ``frame_len`` 0 (GRC's default too) takes the frame length from the file;
    another value must match it.
    """

    @staticmethod
    def dataset_frame_len(path):
        """Samples per frame of the dataset file, read from its header
        (data.files.dataset_frame_length), not from its frames: GRC sizes
        the block's port with it when Frame Length is 0."""
        return dataset_frame_length(path)

    def __init__(self, path, layout="complex", repeat=False, trusted=False,
                 shuffle=False, seed=0, split="all", frame_len=0):
        check_layout(layout)
        ds = load_dataset(path, trusted=trusted)
        if frame_len and frame_len != ds.frame_length:
            raise ValueError(f"{path}: frames have {ds.frame_length} samples, "
                             f"the block was set to frame_len={frame_len}")
        rows = split_indices(ds, split, seed=seed)
        if rows.size == 0:
            raise ValueError(f"{path}: split {split!r} has no frames")
        vlen = vector_length(layout, ds.frame_length)
        dtype = LAYOUTS[layout][0]
        gr.sync_block.__init__(self, name="dataset_source", in_sig=None,
                               out_sig=[(dtype, vlen)])

        # Keep only what work() needs: the frames (read as work() sends them,
        # so that a file-mapped dataset is never copied whole) and the truth.
        self._frames = ds.frames
        self._layout = layout
        self._frame_index = rows
        self._label_pmts = [pmt.intern(name) for name in ds.classes]
        self._labels = ds.labels[rows]
        self._snrs = ds.snrs[rows].astype(np.float64)
        self._classes = ds.classes
        self._frame_length = ds.frame_length
        self._repeat = bool(repeat)
        self._shuffle = bool(shuffle)
        self._rng = np.random.default_rng(seed)
        self._order = self._pass_order()
        self._position = 0
        self._passes = 0

        self._log = gr.logger("amcee.dataset_source")
        self._log.info(f"{path}: {len(rows)} frames of {ds.frame_length} samples "
                       f"({split}), layout {layout}, repeat={self._repeat}, "
                       f"shuffle={self._shuffle}")

    def _pass_order(self):
        n = len(self._labels)
        return self._rng.permutation(n) if self._shuffle else np.arange(n)

    # Read-only facts and the one runtime setting GRC exposes.
    def num_frames(self):
        return len(self._labels)

    def frame_length(self):
        return self._frame_length

    def classes(self):
        return self._classes

    def get_repeat(self):
        return self._repeat

    def set_repeat(self, repeat):
        self._repeat = bool(repeat)

    def work(self, input_items, output_items):
        if self._position == len(self._order):
            if not self._repeat:
                self._log.info(f"all {len(self._order)} frames sent")
                return -1  # WORK_DONE
            self._passes += 1
            self._order = self._pass_order()
            self._position = 0
        out = output_items[0]
        n = min(len(out), len(self._order) - self._position)
        rows = self._order[self._position:self._position + n]
        out[:n] = frames_to_vectors(np.asarray(self._frames[self._frame_index[rows]]), self._layout)
        first = self.nitems_written(0)
        src = self.alias_pmt()
        for i, row in enumerate(rows.tolist()):
            offset = first + i
            self.add_item_tag(0, offset, LABEL_TAG,
                              self._label_pmts[self._labels[row]], src)
            self.add_item_tag(0, offset, SNR_TAG, pmt.from_double(float(self._snrs[row])), src)
            self.add_item_tag(0, offset, FRAME_INDEX_TAG,
                              pmt.from_uint64(int(self._frame_index[row])), src)
        self._position += n
        return n
