"""The helpers the pages share: cached loaders (cache), widgets, each page's *_ui helpers,
the server launcher (launch) and the in-browser decoder (live_decoder, components/)."""
