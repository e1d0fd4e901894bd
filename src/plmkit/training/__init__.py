"""The one Trainer and its parts (optimisers, schedules, checkpoints, DDP, reporting)."""

from plmkit.training.trainer import Trainer, TrainingConfig, TrainResult, move_to, unwrap

__all__ = ["Trainer", "TrainingConfig", "TrainResult", "move_to", "unwrap"]
