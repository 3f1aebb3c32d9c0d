"""Sliders that decode as you drag (issue 15, section 4): for a model whose decoder is a
plain MLP (genlab.evaluation.mlp_export), a custom component shipped in pages/ui/components/latent_decoder
(an HTML page and a small JavaScript file, nothing downloaded) receives the decoder's
weights once and runs its forward pass in the browser on every ``input`` event of its
sliders; the final code comes back to Python on release. Other decoders keep the
server path (the caller's sliders)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components
import torch

from pages.ui import cache

_COMPONENT = components.declare_component(
    "latent_decoder", path=str(Path(__file__).parent / "components" / "latent_decoder"))
SCALE = 6  # screen pixels per image pixel


def live_sliders(run, dims: list[int], base: torch.Tensor, version: int = 0) -> bool:
    """Draw the browser-side sliders and decoder for ``dims`` around ``base`` and return
    True, or return False (drawing only the switch) when the model's decoder is not an MLP
    or the person chose the server path. A new ``version`` (or base, or dims) puts the
    sliders back at ``base``."""
    model = cache.decoder_json(run.path, run.stamp)
    if model is None:
        return False
    on = st.toggle("Decode in the browser while dragging", value=True, key="live_decoder",
                   help="The decoder is a plain MLP, so its weights go to the browser once and "
                        "every slider movement redraws the image there; off: each release asks "
                        "the server.")
    if not on:
        return False
    _sliders(run, dims, base, model, version)
    return True


@st.fragment
def _sliders(run, dims: list[int], base: torch.Tensor, model: dict, version: int) -> None:
    ref, key = run.ref, f"live-{run.key}"
    state_key = hashlib.md5(f"{base.tolist()}:{dims}:{version}".encode()).hexdigest()[:10]
    if st.session_state.get(f"{key}-state") != state_key:  # a new base code or other sliders
        st.session_state[f"{key}-state"] = state_key
        st.session_state[f"{key}-z"] = [float(v) for v in base]
    value = st.session_state.get(key) or {}
    need = value.get("need_weights")
    send = f"{key}-sent" not in st.session_state or (need and need != st.session_state.get(f"{key}-sent"))
    args = dict(model_id=run.key, model=model if send else None, z=st.session_state[f"{key}-z"],
                dims=list(dims), labels=[f"z{j + 1}" for j in dims], state_key=state_key,
                lo=[float(ref.lo[j]) for j in dims], hi=[float(ref.hi[j]) for j in dims], scale=SCALE)
    if send:
        st.session_state[f"{key}-sent"] = need or True
    got = _COMPONENT(**args, key=key, default=None)
    if got and got.get("z") and not got.get("need_weights"):
        st.session_state[f"{key}-z"] = [float(v) for v in got["z"]]
        st.session_state["live_decoder_z"] = st.session_state[f"{key}-z"]
        st.caption(f"Released at z = ({', '.join(f'{v:.2f}' for v in got['z'][:6])}"
                   f"{', ...' if len(got['z']) > 6 else ''}); the browser decoded it in "
                   f"{got.get('ms', float('nan')):.2f} ms.")
