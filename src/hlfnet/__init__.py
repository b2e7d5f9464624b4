"""hlfnet: HLF-Net (High- and Low-Level Feature Enhancement) for medical image segmentation."""

from hlfnet.models import create_model, list_models
from hlfnet.pretrained import list_pretrained, load_pretrained

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "list_pretrained", "load_pretrained"]
