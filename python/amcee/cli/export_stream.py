"""amcee export-stream: write a dataset as a SigMF recording that file_source replays."""
from ..data.dataset import SPLITS
from ..data.files import DATASET_FORMATS
from ..frames import LAYOUTS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export-stream", help="write a dataset as a replayable SigMF recording",
        description="Write the frames of a dataset (" + DATASET_FORMATS + ") "
                    "back to back in PREFIX.sigmf-data, with one annotation per frame "
                    "(class name, SNR) in PREFIX.sigmf-meta. Replay the data file with "
                    "blocks.file_source or amcee.dataset_source. Frames are read and written in "
                    "chunks: memory does not grow with the dataset's size.")
    p.add_argument("dataset", help=f"dataset file to export ({DATASET_FORMATS})")
    p.add_argument("--out", required=True, metavar="PREFIX",
                   help="output path without extension (writes PREFIX.sigmf-data and .sigmf-meta)")
    p.add_argument("--layout", choices=tuple(LAYOUTS), default="complex",
                   help="complex: cf32 vectors of L samples; rml: float32 rows of 2L values, "
                        "I then Q (default: %(default)s)")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="part of the paper's stratified split to export (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: %(default)s)")
    p.add_argument("--sample-rate", type=float, default=None,
                   help="core:sample_rate in Hz (default: the dataset's, else 30 kHz as RML22)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing recording at PREFIX (refused without it)")
    p.add_argument("--trusted", action="store_true",
                   help="read a pickle with plain pickle, which can run code in the file; "
                        "only for files you trust")
    p.set_defaults(func=run)
    return p


def run(args):
    from . import print_json
    from ..data.dataset import Dataset, split_indices
    from ..data.files import load_dataset
    from ..data.sigmf_recording import save_replay

    ds = load_dataset(args.dataset, trusted=args.trusted)
    rows = split_indices(ds, args.split, seed=args.seed)
    # The frames stay where load_dataset left them (a file-mapped RadioML 2018
    # file is not read into memory): save_replay reads the split's rows in chunks.
    described = Dataset(ds.frames, ds.labels, ds.snrs, ds.classes,
                        dict(ds.meta, split=args.split, split_seed=args.seed))
    data_path, meta_path = save_replay(args.out, described, layout=args.layout, rows=rows,
                                       sample_rate=args.sample_rate, overwrite=args.overwrite)
    print_json({
        "data": data_path,
        "meta": meta_path,
        "frames": len(rows),
        "frame_length": ds.frame_length,
        "layout": args.layout,
        "split": args.split,
        "classes": list(ds.classes),
    }, indent=1)
