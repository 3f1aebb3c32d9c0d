"""2-D lab: pick a density (toy sets, Rezende & Mohamed's U1-U4, your own word or picture)
and watch genlab's families fit it live on a CPU: flows (RealNVP, NICE, Glow-style by
maximum likelihood; planar and radial by reverse KL), a VAE, a GAN and a Gaussian mixture
by EM, side by side, with the exact KL(target || model) from the grid's quadrature. The
page's whole state is in its URL (genlab.lab.state); the helpers are pages/ui/lab_ui.py."""
from __future__ import annotations

import streamlit as st

from pages import via_router
from pages.ui import lab_ui as ui

via_router()

st.title("2-D lab")
st.caption("Every family of genlab on a density you choose, trained live here. Play, pause, "
           "step; change the learning rate or batch size while it trains; the URL is the "
           "experiment (copy it to reopen the same one).")

state = ui.url_state()
state, image = ui.controls(state)
ui.buttons()
ui.save(state)
exps = ui.experiments(state, image)
if exps is None:
    st.stop()
ui.target_row(exps[0])
ui.run_live(state)
