"""kgzoo's data layer: KGRecData, readers, the catalogue, protocols, samplers, the DataModule."""
from .datasets import dataset_spec, list_datasets, load_data, resolve_dataset
from .frames import from_frames
from .spec import DatasetSpec, register_dataset
from .kgdata import DataValidationError, KGRecData
from .protocol import EvalProtocol, Split, check_leakage
from .readers import DataFormatError

__all__ = ["DataFormatError", "DataValidationError", "DatasetSpec", "EvalProtocol", "KGRecData", "Split",
           "check_leakage", "dataset_spec", "from_frames", "list_datasets", "load_data", "register_dataset",
           "resolve_dataset"]
