"""Screenshot of GNU Radio Companion with gr-amcee: docs/grc.png.

    .venv/bin/python docs/make_grc_screenshot.py [--example examples/demo_qt_gui.grc] [--out docs/grc.png]

GRC runs in this process, as /usr/bin/gnuradio-companion starts it, with the
block YAML of this checkout (grc/), the block library's AMC Early Exit
category expanded and the example open; the window is saved as PNG through
GdkPixbuf (no screenshot tool needed). Without a DISPLAY it re-runs itself
under xvfb-run (scripts/setup.sh installs xvfb).
"""
import argparse
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CATEGORY = "AMC Early Exit"  # the blocks' category '[AMC Early Exit]': GRC shows a [module] without brackets
WINDOW_SIZE = (1600, 900)
# Window layout of the screenshot (GRC's own settings file, ~/.gnuradio/grc.conf
# otherwise): block library 300 px wide, console 170 px high.
GRC_SETTINGS = f"""[main]
main_window_width = {WINDOW_SIZE[0]}
main_window_height = {WINDOW_SIZE[1]}
blocks_window_position = {WINDOW_SIZE[0] - 300}
console_window_position = {WINDOW_SIZE[1] - 170 - 80}
"""
DRAW_DELAY_MS = 3000  # GRC loads the flowgraph and draws it, then the screenshot is taken


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=pathlib.Path, default=ROOT / "examples" / "demo_qt_gui.grc",
                        help="flowgraph to open (default: %(default)s)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "grc.png",
                        help="PNG to write (default: %(default)s)")
    args = parser.parse_args()
    if not args.example.is_file():
        parser.error(f"--example {args.example}: no such flowgraph")
    return args


def _grc_environment(settings_dir):
    """Only GNU Radio's blocks and this checkout's YAML (not an installed copy),
    and fixed window settings instead of the user's."""
    from gnuradio import gr

    settings = pathlib.Path(settings_dir) / "grc.conf"
    settings.write_text(GRC_SETTINGS)
    os.environ.update(GRC_BLOCKS_PATH=str(ROOT / "grc"), GRC_PREFS_PATH=str(settings),
                      GR_CONF_GRC_GLOBAL_BLOCKS_PATH=os.path.join(gr.prefix(), "share", "gnuradio", "grc", "blocks"),
                      GR_CONF_GRC_LOCAL_BLOCKS_PATH="")


def _show_category(main_window):
    """Collapses the block library and expands CATEGORY at its top."""
    from gnuradio.grc.gui.BlockTreeWindow import NAME_INDEX

    tree = main_window.btwin.treeview
    model = tree.get_model()
    row = model.get_iter_first()
    while row is not None and model.get_value(row, NAME_INDEX) != CATEGORY:
        row = model.iter_next(row)
    if row is None:
        raise SystemExit(f"the block library has no {CATEGORY} category: are grc/*.block.yml valid?")
    path = model.get_path(row)
    tree.collapse_all()
    tree.expand_row(path, True)
    tree.scroll_to_cell(path, None, True, 0.0, 0.0)


def _fit_flowgraph(main_window):
    """Zooms the canvas out (as Ctrl+scroll does) until the whole flowgraph fits."""
    page = main_window.current_page
    canvas = page.drawing_area
    _, _, width, height = page.flow_graph.get_extents()
    visible = page.viewport.get_allocation()
    # Before GTK has laid the page out its viewport is a few pixels wide; the
    # window's own layout (GRC_SETTINGS) says how much room the canvas gets.
    room_w = visible.width if visible.width > 200 else WINDOW_SIZE[0] - 300
    room_h = visible.height if visible.height > 200 else WINDOW_SIZE[1] - 170 - 80 - 60
    while canvas.zoom_factor > 0.2 and (width * canvas.zoom_factor + 20 > room_w
                                        or height * canvas.zoom_factor + 20 > room_h):
        canvas.zoom_out()


def _save_window(main_window, out):
    from gi.repository import Gdk

    window = main_window.get_window()
    pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, window.get_width(), window.get_height())
    out.parent.mkdir(parents=True, exist_ok=True)
    pixbuf.savev(str(out), "png", [], [])
    print(f"wrote {out} ({pixbuf.get_width()}x{pixbuf.get_height()})")


def main():
    args = _parse_args()
    if not os.environ.get("DISPLAY"):
        os.execvp("xvfb-run", ["xvfb-run", "-a", "-s", f"-screen 0 {WINDOW_SIZE[0]}x{WINDOW_SIZE[1]}x24",
                               sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory() as settings_dir:
        _grc_environment(settings_dir)
        import gi

        gi.require_version("Gtk", "3.0")
        gi.require_version("PangoCairo", "1.0")
        from gi.repository import GLib
        from gnuradio import gr
        from gnuradio.grc.gui.Platform import Platform  # before Application, as in gnuradio.grc.main
        from gnuradio.grc.gui.Application import Application

        # As gnuradio.grc.main builds it.
        platform = Platform(version=gr.version(), version_parts=(gr.major_version(), gr.api_version(),
                                                                 gr.minor_version()),
                            prefs=gr.prefs(), install_prefix=gr.prefix())
        platform.build_library()
        app = Application([str(args.example.resolve())], platform)
        failure = []

        def run_step(step):
            """A GLib callback: runs step once; an error ends GRC and is raised after it."""
            try:
                step()
            except BaseException as exc:
                failure.append(exc)
                app.quit()
            return False

        def arrange_then_save():
            _show_category(app.main_window)
            _fit_flowgraph(app.main_window)
            # Save once GTK has drawn the expanded library and the zoomed canvas.
            GLib.timeout_add(500, run_step, save_and_quit)

        def save_and_quit():
            _save_window(app.main_window, args.out)
            app.quit()

        app.connect("activate", lambda _app: GLib.timeout_add(DRAW_DELAY_MS, run_step, arrange_then_save))
        app.run([])
        if failure:
            raise failure[0]


if __name__ == "__main__":
    main()
