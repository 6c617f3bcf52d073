"""Print, as JSON, where GNU Radio Companion draws every block of .grc files.

Run under an X server (tests/test_examples.py uses xvfb-run):
    python tests/grc_extents.py FLOWGRAPH.grc ...
prints {file: {block name: [x0, y0, x1, y1, x, y]}}: the block's extent with
its ports, as GRC's canvas computes it from the block's parameters and fonts,
and the block's coordinate. GRC's own drawing code measures the blocks, so the
sizes are the ones a user sees (at GRC's default font size) with no estimate
of text widths here. Variables and disabled blocks are drawn, as in a fresh GRC.
"""
import json
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("PangoCairo", "1.0")
from gi.repository import Gtk  # noqa: E402
from gnuradio import gr  # noqa: E402
from gnuradio.grc.gui.Platform import Platform  # noqa: E402 (first: GRC's gui modules import each other)
from gnuradio.grc.gui import Actions  # noqa: E402
from gnuradio.grc.gui.canvas import flowgraph as canvas_flowgraph  # noqa: E402


def main(paths):
    # A canvas flow graph asks the running Gtk application for its main window
    # (for the right-click menu); there is none outside GRC.
    canvas_flowgraph._ContextMenu = lambda *args, **kwargs: None
    Actions.TOGGLE_HIDE_VARIABLES.get_active = lambda: False
    Actions.TOGGLE_HIDE_DISABLED_BLOCKS.get_active = lambda: False
    Gtk.Application(application_id="org.gr_amcee.grc_extents").register(None)
    platform = Platform(version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
                        prefs=gr.prefs(), install_prefix=gr.prefix())
    platform.build_library()
    extents = {}
    for path in paths:
        fg = platform.make_flow_graph()
        fg.import_data(platform.parse_flow_graph(path))
        fg.update()  # rewrite, validate, create labels and shapes
        extents[path] = {block.name: [*map(float, block.get_extents()), *map(float, block.coordinate)]
                         for block in fg.blocks}
    print(json.dumps(extents))


if __name__ == "__main__":
    main(sys.argv[1:])
