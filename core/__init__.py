"""Trinity Studio engine: tasks, datasets, models, training, inference, export. Never imports gradio."""
