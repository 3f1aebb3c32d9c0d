"""genlab: deep generative models on small image datasets, and honest numbers about them."""
__version__ = "0.1.0"
