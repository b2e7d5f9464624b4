"""hlfnet: HLF-Net (High- and Low-Level Feature Enhancement) for medical image segmentation."""

from hlfnet.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models"]
