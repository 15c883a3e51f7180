"""The Gradio studio: one module per tab, calling core; no ML logic lives here."""
