"""dpokit: align language models with preference data (DPO), from data to served model."""

__version__ = "0.1.0"
