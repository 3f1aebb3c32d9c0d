"""The 2-D lab: toy densities with exact figures on a grid (targets), small models of every
genlab family built from genlab's own parts (families), a stepper that trains them a few
steps at a time (train), the page's state as URL parameters (state) and plotly figures
(figures). Nothing here imports streamlit."""
