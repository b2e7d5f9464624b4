"""hlfnet: HLF-Net (High- and Low-Level Feature Enhancement) for medical image segmentation."""

from hlfnet.experiment import load_pretrained
from hlfnet.models import create_model, list_models
from hlfnet.pretrained import list_pretrained
from hlfnet.version import __version__

__all__ = ["__version__", "create_model", "list_models", "list_pretrained", "load_pretrained"]
