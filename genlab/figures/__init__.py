"""Figures and tables of runs (no streamlit): chart options and colours (charts), training
curves (curves), latent-space figures (latent_figures), likelihood figures
(likelihood_figures) and the tables' rows and formatting (tables)."""
