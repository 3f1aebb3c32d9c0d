"""genlab explorer: `python app.py` (or `streamlit run app.py`; the first imports torch and
the models before the server starts, so no first visit waits for them: pages/ui/launch.py).

The router: builds the navigation from ``pages.PAGES`` and draws the sidebar every page
shares (device, data root, run folders). Pages read the run folders from
``st.session_state["runs_roots"]`` (a list of paths).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and "streamlit" not in sys.modules:  # `python app.py [options]`,
    from pages.ui.launch import serve  # not a script run by Streamlit (which imported itself)

    raise SystemExit(serve(__file__, sys.argv[1:]))

import streamlit as st

from genlab.data import data_root
from genlab.device import device_name, pick_device
from genlab.figures.tables import datasets_status
from genlab.runs.status import MISSING, root_problem, runs_roots
from pages import PAGES
from pages.ui import launch
from pages.ui.widgets import code, plain

# a local file: a ":material/..." page icon makes the browser fetch the favicon from a
# font server, and an emoji one from a CDN, neither of which works offline
ICON = str(Path(__file__).resolve().parent / "pages" / "icon.png")
st.set_page_config(layout="wide", page_title="genlab", page_icon=ICON)
MAX_SHOWN = 8  # run folders the sidebar names one by one; the rest are counted


@st.cache_resource(show_spinner=False)
def _device() -> str:
    dev = pick_device("auto")
    return f"GPU: {device_name(dev)}" if dev.type == "cuda" else (
        "Apple GPU (mps)" if dev.type == "mps" else "CPU (no GPU found)")


def _data_sidebar() -> None:
    rows = datasets_status()
    st.markdown(f"**Data root** `{data_root()}`")  # as configured: relative to where the app runs
    st.markdown("  \n".join(
        f"{':green[:material/check_circle:]' if r['present'] else ':gray[:material/remove:]'} "
        f"{r['dataset']} ({r['shape']}){'' if r['present'] else ' · missing'}" for r in rows))
    missing = [r for r in rows if not r["present"]]
    if missing:
        st.caption(f"Missing: {', '.join(r['dataset'] for r in missing)}. Online, torchvision "
                   "downloads a dataset on first use; offline, set GENLAB_DATA to a folder "
                   "holding " + "; ".join(r["where"] for r in missing) + ".")


def _runs_sidebar() -> None:
    """The run folders box, and a line for each folder: a missing one stays (saving a run
    there makes it), one that cannot be listed (a file, unreadable, a bad name) is skipped
    with a warning naming it; when none of the typed ones can be used, the default ones are."""
    if "runs_folders" not in st.session_state:
        st.session_state["runs_folders"] = ", ".join(map(str, runs_roots()))
    text = st.text_input("Run folders", key="runs_folders",
                         help="Comma-separated folders holding run directories "
                              "(default: runs, checkpoints; or set GENLAB_RUNS).")
    typed = runs_roots(text)
    why = {r: root_problem(r) for r in typed}
    usable = [r for r in typed if why[r] in (None, MISSING)]
    roots = usable or [r for r in runs_roots() if root_problem(r) in (None, MISSING)]
    st.session_state["runs_roots"] = roots
    st.caption("  \n".join(f":material/folder: {code(r)}" if root_problem(r) is None else
                            f":material/folder_off: {code(r)} {MISSING} yet: saving a run there makes it"
                            for r in roots[:MAX_SHOWN]) + (f"  \n... and {len(roots) - MAX_SHOWN:,} more"
                                                           if roots[MAX_SHOWN:] else ""))
    skipped = [r for r in typed if r not in usable]
    for r in skipped[:MAX_SHOWN]:
        st.warning(f"Run folder {code(r)} {plain(why[r])}: skipped, "
                   + ("the other folders are used." if usable else "so the default ones are used.")
                   + " Type folders this app can list, comma-separated.", icon=":material/folder_off:")
    if skipped[MAX_SHOWN:]:
        st.warning(f"... and {len(skipped) - MAX_SHOWN:,} more run folders skipped.", icon=":material/folder_off:")


launch.wait_for_warm_up()  # never import beside another session's warm-up (pages/ui/launch.py)
nav = st.navigation([st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path or None,
                             default=not p.url_path) for p in PAGES])
with st.sidebar:
    st.markdown(f"**Device** {_device()}")
    _data_sidebar()
    st.divider()
    _runs_sidebar()
nav.run()


launch.warm_once()  # here, once the page is drawn (`streamlit run app.py`; a no-op after serve)
