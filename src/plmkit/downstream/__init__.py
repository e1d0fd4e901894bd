"""BERT's downstream tasks as a fine-tuned checkpoint uses them: everything but the training.

The seeds fine-tune BERT on four families (single sentences, sentence pairs, token tagging, span
QA). What a *fine-tuned checkpoint* needs in order to be used lives here, below
:mod:`plmkit.training`, so that inference (:mod:`plmkit.pipelines`, ``plm predict / evaluate /
classify``, and the serving and export built on them) never imports the Trainer:

* :mod:`~plmkit.downstream.settings` — the task families, their aliases, and ``task.json`` (how a
  checkpoint's inputs are read), validated as untrusted input;
* :mod:`~plmkit.downstream.features` — reading example files and turning examples into model
  features and unshuffled evaluation batches;
* :mod:`~plmkit.downstream.loading` — the checkpoint's tokenizer, a family's head on an encoder,
  and a fine-tuned model loaded with every weight;
* :mod:`~plmkit.downstream.predictors` — per family, predictions from batches and the official
  scores on labelled data; :func:`evaluate_checkpoint` scores a folder on a file.

:mod:`plmkit.training.finetune` adds the training half on top (the ``step`` of each family, the
label set chosen from the training file, :func:`~plmkit.training.finetune.finetune`).
"""

from plmkit.downstream.features import (TaskData, eval_batches, featurize, prepare_tags,
                                        read_examples, tag_label_set)
from plmkit.downstream.loading import (ARCHITECTURES, HEAD_PREFIXES, build_model,
                                       load_finetuned, load_tokenizer)
from plmkit.downstream.predictors import (ClassificationPredictor, QuestionAnsweringPredictor,
                                          TaggingPredictor, evaluate_checkpoint, make_predictor,
                                          qa_scores)
from plmkit.downstream.settings import (TASK_ALIASES, TASK_FILE, TASKS, TaskSettings,
                                        canonical_task, load_settings)

__all__ = [
    "ARCHITECTURES", "ClassificationPredictor", "HEAD_PREFIXES", "QuestionAnsweringPredictor",
    "TASKS", "TASK_ALIASES", "TASK_FILE", "TaggingPredictor", "TaskData", "TaskSettings",
    "build_model", "canonical_task", "eval_batches", "evaluate_checkpoint",
    "featurize", "load_finetuned", "load_settings", "load_tokenizer", "make_predictor",
    "prepare_tags", "qa_scores", "read_examples", "tag_label_set",
]
