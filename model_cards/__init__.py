"""Model-card templates (Jinja) for trl_ext trainers, shipped as package data `trl_ext.model_cards`."""
