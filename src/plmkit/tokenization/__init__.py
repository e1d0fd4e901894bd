"""Text → ids for BERT: basic tokenization, WordPiece, model inputs, vocabulary training.

* :class:`WordPieceTokenizer` – load a ``vocab.txt`` (``from_pretrained``), ``encode`` /
  ``encode_batch`` into :class:`Encoding` objects, ``tokenizer(texts, padding=True,
  return_tensors="pt")`` into :class:`ModelInputs` as in Hugging Face, ``encode_ids`` for
  corpora, ``decode``;
* :class:`BasicTokenizer` – clean-up, CJK splitting, accents, case, punctuation;
* :func:`train_wordpiece` – learn a WordPiece vocabulary from a corpus.
"""

from plmkit.tokenization.basic import BasicTokenizer
from plmkit.tokenization.encoding import Encoding
from plmkit.tokenization.inputs import ModelInputs
from plmkit.tokenization.training import train_wordpiece
from plmkit.tokenization.wordpiece import WordPieceTokenizer, load_vocab

__all__ = ["BasicTokenizer", "Encoding", "ModelInputs", "WordPieceTokenizer", "load_vocab", "train_wordpiece"]
