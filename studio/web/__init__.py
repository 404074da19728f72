"""The Gradio web studio: login, layout and the role-checked handlers."""
