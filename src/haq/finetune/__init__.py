"""Training, quantization-aware fine-tuning and evaluation loops for any classifier.

``train`` / ``finetune`` run a seeded, deterministic SGD or Adam loop described by a
``TrainConfig``; ``evaluate`` returns top-1 accuracy in percent. The library never prints:
pass a ``progress`` callback to observe a run.
"""

from haq.finetune._augment import augment_batch
from haq.finetune._config import TrainConfig, final_finetune_config, search_finetune_config
from haq.finetune._loop import evaluate, finetune, train

__all__ = ["TrainConfig", "augment_batch", "evaluate", "final_finetune_config", "finetune",
           "search_finetune_config", "train"]
