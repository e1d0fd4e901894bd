"""BERT's two pre-training tasks as data: next sentence prediction pairs and masked-LM masks.

This module follows the recipe of Devlin et al. (2018), section 3.1, as implemented by
google-research/bert's ``create_pretraining_data.py``; it works on token ids, never on text.

**Next sentence prediction (NSP).** Each document (a list of tokenised sentences) is cut into
*chunks* of consecutive sentences of about ``target_seq_length`` tokens. Usually the target is
the full ``max_seq_length - 3`` (room for ``[CLS]``, ``[SEP]``, ``[SEP]``) because short sequences
waste compute; with probability ``short_seq_prob`` it is a random shorter length, so the model
also sees the short inputs of fine-tuning. Segment A is a random non-empty prefix of the chunk.
Half of the time segment B is the rest of the chunk (**IsNext**, label 0); otherwise B is taken
from a random position of another document (**NotNext**, label 1) and the unused sentences of
the chunk are *put back* to start the next chunk, so no text is wasted. A chunk of a single
sentence (a one-sentence document, the last sentence of a document, or a sentence longer than
the target) has no "rest", so its B is always random. ``truncate_seq_pair`` then trims the longer
segment one token at a time, from the front or the back at random, until the pair fits; a
sentence longer than ``max_seq_length`` is thus cut, never a crash. Labels follow Hugging Face
(``next_sentence_label`` 0 = B follows A, 1 = B is random).

**Masked LM (MLM).** :func:`mask_tokens` picks ``masked_lm_prob`` (15 %) of the positions that are
not special tokens (at least one, at most ``max_predictions_per_seq``); of those 80 % become
``[MASK]``, 10 % a random token and 10 % stay unchanged, so the model cannot learn that only
``[MASK]`` positions matter and must keep a good representation of every token. The loss is
taken only at the picked positions (``labels`` holds -100 elsewhere). With *whole word masking*
all word pieces of a word are picked together (a word is a piece plus the ``##`` pieces that
follow it, or whatever ``word_starts`` says), so the model cannot fill ``##ing`` from ``jump``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from plmkit.errors import PlmError

IS_NEXT = 0
NOT_NEXT = 1
IGNORE_INDEX = -100  # the label of positions without a masked-LM prediction (PyTorch's default)

Sentence = Sequence[int]  # the token ids of one sentence (list or 1-D array)
Document = Sequence[Sentence]


@dataclass
class TrainingInstance:
    """One NSP pair: ``[CLS] A [SEP] B [SEP]`` as ids, plus where A ends and whether B is random.

    ``word_starts`` (when the documents carried them) marks, per position, the first piece of a
    word; ``[CLS]``/``[SEP]`` and the first token left after truncation count as word starts.
    """

    input_ids: np.ndarray
    segment_a_length: int  # tokens of A, without [CLS]/[SEP]
    is_random_next: bool
    word_starts: np.ndarray | None = field(default=None, repr=False)

    @property
    def next_sentence_label(self) -> int:
        return NOT_NEXT if self.is_random_next else IS_NEXT

    @property
    def token_type_ids(self) -> np.ndarray:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        return token_type_ids(len(self.input_ids), self.segment_a_length)


def token_type_ids(length: int, segment_a_length: int) -> np.ndarray:
    types = np.zeros(length, dtype=np.int64)
    types[segment_a_length + 2:] = 1
    return types


# ----------------------------------------------------------------------------- NSP pairs


def truncate_seq_pair(length_a: int, length_b: int, max_num_tokens: int,
                      rng: random.Random) -> tuple[tuple[int, int], tuple[int, int]]:
    """Trim the longer of A and B, one token at a time from the front or back, until they fit.

    Returns the kept ``(start, end)`` of A and of B. Trimming both ends at random (rather than
    always the tail) avoids teaching the model that sequences end abruptly only on the right.
    """
    a_start, a_end, b_start, b_end = 0, length_a, 0, length_b
    while (a_end - a_start) + (b_end - b_start) > max_num_tokens:
        front = rng.random() < 0.5
        if a_end - a_start >= b_end - b_start:
            a_start, a_end = (a_start + 1, a_end) if front else (a_start, a_end - 1)
        else:
            b_start, b_end = (b_start + 1, b_end) if front else (b_start, b_end - 1)
    return (a_start, a_end), (b_start, b_end)


@dataclass
class TokenizedCorpus:
    """A corpus as ids in three flat arrays: 4 bytes a token, 8 a sentence, nothing per object.

    ``ids[sentence_offsets[s]:sentence_offsets[s + 1]]`` is sentence ``s``, and
    ``sentence_offsets[document_offsets[d]:document_offsets[d + 1]]`` bound the sentences of
    document ``d``. The sentences of a chunk are contiguous, so segments A and B are plain
    slices of ``ids`` — pairing copies nothing until an instance is laid out.
    ``word_starts`` (optional) holds one bool per token, True at the first piece of a word.
    """

    ids: np.ndarray
    sentence_offsets: np.ndarray
    document_offsets: np.ndarray
    word_starts: np.ndarray | None = None

    @property
    def num_documents(self) -> int:
        return len(self.document_offsets) - 1

    @property
    def num_sentences(self) -> int:
        return len(self.sentence_offsets) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.ids)

    @classmethod
    def from_documents(cls, documents: Sequence[Document],
                       word_starts: Sequence[Sequence[Sequence[bool]]] | None = None,
                       ) -> TokenizedCorpus:
        """Flatten documents of sentences of ids, dropping empty sentences and documents."""
        pieces: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        sentence_ends: list[int] = []
        document_ends: list[int] = []
        total = 0
        for d, document in enumerate(documents):
            for j, sentence in enumerate(document):
                if len(sentence):
                    pieces.append(np.asarray(sentence, dtype=np.int64))
                    if word_starts is not None:
                        starts.append(np.asarray(word_starts[d][j], dtype=bool))
                    total += len(sentence)
                    sentence_ends.append(total)
            if len(sentence_ends) > (document_ends[-1] if document_ends else 0):
                document_ends.append(len(sentence_ends))
        return cls(
            ids=np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64),
            sentence_offsets=np.asarray([0, *sentence_ends], dtype=np.int64),
            document_offsets=np.asarray([0, *document_ends], dtype=np.int64),
            word_starts=(np.concatenate(starts) if starts else np.zeros(0, dtype=bool))
            if word_starts is not None else None)


def _random_segment(corpus: TokenizedCorpus, document_index: int, avoid: int,
                    target_b_length: int, rng: random.Random) -> tuple[int, int]:
    """Token range ``[start, end)`` of B for a NotNext pair.

    B comes from another document, drawn uniformly (google draws up to ten times and may end up
    with the same document), starting at a random sentence and taking whole sentences until it
    reaches ``target_b_length`` tokens (at least one sentence). With a one-document corpus, B
    starts anywhere except at sentence ``avoid`` (the one that really follows A), so a NotNext
    pair is never an actual next pair.
    """
    documents, sentences = corpus.document_offsets, corpus.sentence_offsets
    if len(documents) > 2:
        other = rng.randrange(len(documents) - 2)
        other += other >= document_index
        first_sentence, end_sentence = int(documents[other]), int(documents[other + 1])
        first = first_sentence + rng.randrange(end_sentence - first_sentence)
    else:
        first_sentence, end_sentence = int(documents[0]), int(documents[1])
        starts = [j for j in range(first_sentence, end_sentence) if j != avoid] or [avoid]
        first = starts[rng.randrange(len(starts))]
    start = int(sentences[first])
    # The first sentence end at or beyond start + target (google adds whole sentences).
    end = int(np.searchsorted(sentences, start + target_b_length, side="left"))
    end = min(max(end, first + 1), end_sentence)
    return start, int(sentences[end])


def instances_from_document(corpus: TokenizedCorpus, document_index: int, *,
                            max_seq_length: int, short_seq_prob: float, cls_token_id: int,
                            sep_token_id: int, rng: random.Random) -> Iterator[TrainingInstance]:
    """The NSP instances of one document (see the module docstring for the recipe)."""
    first_sentence = int(corpus.document_offsets[document_index])
    end_sentence = int(corpus.document_offsets[document_index + 1])
    offsets = corpus.sentence_offsets[first_sentence: end_sentence + 1].tolist()
    num_sentences = end_sentence - first_sentence
    max_num_tokens = max_seq_length - 3  # room for [CLS], [SEP], [SEP]
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    chunk_start = 0  # the chunk is sentences chunk_start..i of the document
    i = 0
    while i < num_sentences:
        if i == num_sentences - 1 or offsets[i + 1] - offsets[chunk_start] >= target_seq_length:
            chunk_size = i + 1 - chunk_start
            # a_end: how many sentences of the chunk go into segment A (at least one).
            a_end = rng.randint(1, chunk_size - 1) if chunk_size >= 2 else 1
            a_range = (offsets[chunk_start], offsets[chunk_start + a_end])
            if chunk_size == 1 or rng.random() < 0.5:
                is_random_next = True
                b_range = _random_segment(
                    corpus, document_index, avoid=first_sentence + chunk_start + a_end,
                    target_b_length=target_seq_length - (a_range[1] - a_range[0]), rng=rng)
                # The chunk's sentences after A were not used: put them back.
                i -= chunk_size - a_end
            else:
                is_random_next = False
                b_range = (a_range[1], offsets[i + 1])
            yield _pair(corpus, a_range, b_range, is_random_next, max_num_tokens,
                        cls_token_id, sep_token_id, rng)
            chunk_start = i + 1
        i += 1


def _pair(corpus: TokenizedCorpus, a_range: tuple[int, int], b_range: tuple[int, int],
          is_random_next: bool, max_num_tokens: int, cls_token_id: int, sep_token_id: int,
          rng: random.Random) -> TrainingInstance:
    """Truncate A and B to fit, then lay out ``[CLS] A [SEP] B [SEP]``."""
    (a0, a1), (b0, b1) = truncate_seq_pair(a_range[1] - a_range[0], b_range[1] - b_range[0],
                                           max_num_tokens, rng)
    a0, a1, b0, b1 = a0 + a_range[0], a1 + a_range[0], b0 + b_range[0], b1 + b_range[0]
    length_a, length = a1 - a0, (a1 - a0) + (b1 - b0) + 3
    input_ids = np.empty(length, dtype=np.int64)
    input_ids[0] = cls_token_id
    input_ids[1: length_a + 1] = corpus.ids[a0:a1]
    input_ids[length_a + 1] = sep_token_id
    input_ids[length_a + 2: -1] = corpus.ids[b0:b1]
    input_ids[-1] = sep_token_id
    starts = None
    if corpus.word_starts is not None:
        starts = np.ones(length, dtype=bool)  # [CLS], [SEP], and the first piece of A and B:
        starts[2: length_a + 1] = corpus.word_starts[a0 + 1: a1]  # a word cut by truncation
        starts[length_a + 3: -1] = corpus.word_starts[b0 + 1: b1]  # is a word of its own
    return TrainingInstance(input_ids, length_a, is_random_next, starts)


def iter_instances(documents: Sequence[Document] | TokenizedCorpus, *, max_seq_length: int = 128,
                   short_seq_prob: float = 0.1, dupe_factor: int = 1, rng: random.Random,
                   cls_token_id: int, sep_token_id: int,
                   word_starts: Sequence[Sequence[Sequence[bool]]] | None = None,
                   ) -> Iterator[TrainingInstance]:
    """Stream the NSP instances of a whole corpus, ``dupe_factor`` passes over it.

    Each pass visits the documents in a fresh random order; because chunk targets and A/B
    splits are drawn anew, each pass yields different pairs (and, masked per instance, different
    masks). ``documents`` is a :class:`TokenizedCorpus` or a sequence of documents, each a
    sequence of sentences of token ids (lists or arrays, no special tokens); empty sentences and
    documents are ignored. ``word_starts``, if given with plain documents, has their shape with
    one bool per token. ``rng`` is a :class:`random.Random` (the recipe draws scalars only).

    Raises:
        PlmError: ``max_seq_length`` < 5, or the corpus has fewer than two sentences (a NotNext
            segment could not be drawn).
    """
    if max_seq_length < 5:
        raise PlmError(f"max_seq_length must be at least 5 ([CLS] A [SEP] B [SEP]), "
                       f"got {max_seq_length}", field="max_seq_length")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise PlmError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}",
                       field="short_seq_prob")
    corpus = documents if isinstance(documents, TokenizedCorpus) else \
        TokenizedCorpus.from_documents(documents, word_starts)
    if corpus.num_sentences < 2:
        raise PlmError("next sentence prediction needs a corpus with at least two non-empty "
                       "sentences")
    order = list(range(corpus.num_documents))
    for _ in range(dupe_factor):
        rng.shuffle(order)
        for document_index in order:
            yield from instances_from_document(
                corpus, document_index, max_seq_length=max_seq_length,
                short_seq_prob=short_seq_prob, cls_token_id=cls_token_id,
                sep_token_id=sep_token_id, rng=rng)


def create_instances(documents_as_token_ids: Sequence[Document] | TokenizedCorpus, *,
                     max_seq_length: int = 128, short_seq_prob: float = 0.1,
                     dupe_factor: int = 1, rng: random.Random, cls_token_id: int,
                     sep_token_id: int,
                     word_starts: Sequence[Sequence[Sequence[bool]]] | None = None,
                     ) -> list[TrainingInstance]:
    """All NSP instances of a corpus as a list (:func:`iter_instances` streams them)."""
    return list(iter_instances(documents_as_token_ids, max_seq_length=max_seq_length,
                               short_seq_prob=short_seq_prob, dupe_factor=dupe_factor, rng=rng,
                               cls_token_id=cls_token_id, sep_token_id=sep_token_id,
                               word_starts=word_starts))


# ----------------------------------------------------------------------------- packed (MLM only)

OBJECTIVES = ("mlm_nsp", "mlm")


def iter_packed_instances(corpus: TokenizedCorpus, *, max_seq_length: int, dupe_factor: int,
                          rng: random.Random, cls_token_id: int, sep_token_id: int,
                          ) -> Iterator[TrainingInstance]:
    """Full sequences of whole sentences for masked LM alone (RoBERTa's FULL-SENTENCES).

    Without next sentence prediction there is no pair to build, so every instance is filled to
    ``max_seq_length``: ``[CLS]`` then whole sentences while the next one fits, then ``[SEP]``.
    A document boundary inside an instance is a ``[SEP]`` (Liu et al. 2019 pack across documents
    with an extra separator); a sentence longer than an instance is cut into instance-sized
    pieces. No short sequences (``short_seq_prob``): a padded position is compute spent on
    nothing, which is what a small time budget cannot afford. All tokens are segment A (type 0)
    and ``next_sentence_label`` is 0. Each of the ``dupe_factor`` passes shuffles the documents.
    """
    if max_seq_length < 3:
        raise PlmError(f"max_seq_length must be at least 3 ([CLS] x [SEP]), got {max_seq_length}",
                       field="max_seq_length")
    budget = max_seq_length - 2
    order = list(range(corpus.num_documents))
    for _ in range(dupe_factor):
        rng.shuffle(order)
        pending: list[tuple[int, int]] = []  # token ranges [start, end) of corpus.ids; (-1, -1) = [SEP]
        used = 0
        for document_index in order:
            if pending and used < budget:
                pending.append((-1, -1))  # the boundary between two documents
                used += 1
            first = int(corpus.document_offsets[document_index])
            last = int(corpus.document_offsets[document_index + 1])
            for sentence in range(first, last):
                start = int(corpus.sentence_offsets[sentence])
                end = int(corpus.sentence_offsets[sentence + 1])
                while start < end:
                    if used == budget or (used and end - start > budget - used
                                          and end - start <= budget):
                        yield _packed(corpus, pending, cls_token_id, sep_token_id)
                        pending, used = [], 0
                    take = min(end - start, budget - used)
                    pending.append((start, start + take))
                    used += take
                    start += take
        if pending:
            yield _packed(corpus, pending, cls_token_id, sep_token_id)


def _packed(corpus: TokenizedCorpus, ranges: list[tuple[int, int]], cls_token_id: int,
            sep_token_id: int) -> TrainingInstance:
    while ranges and ranges[-1] == (-1, -1):  # a trailing boundary adds nothing
        ranges = ranges[:-1]
    pieces = [np.asarray([sep_token_id]) if start < 0 else corpus.ids[start:end]
              for start, end in ranges]
    input_ids = np.concatenate([[cls_token_id], *pieces, [sep_token_id]]).astype(np.int64)
    starts = None
    if corpus.word_starts is not None:
        # The first token of every piece starts a word: a sentence cut mid-word gives a word
        # of its own, as truncation does in the NSP recipe.
        parts = [np.ones(1, bool) if start < 0 else
                 np.concatenate([[True], corpus.word_starts[start + 1:end]]) for start, end in ranges]
        starts = np.concatenate([[True], *parts, [True]])
    return TrainingInstance(input_ids, len(input_ids) - 2, False, starts)


# ----------------------------------------------------------------------------- masked LM


def word_starts_from_pieces(input_ids: np.ndarray, is_continuation: np.ndarray) -> np.ndarray:
    """Word starts under WordPiece: every piece except the ``##`` continuation pieces.

    ``is_continuation`` is a bool array over the vocabulary (``token.startswith("##")``). Chinese
    characters are never ``##`` pieces, so each is a word of its own.
    """
    return ~np.asarray(is_continuation, dtype=bool)[np.asarray(input_ids)]


def num_to_predict(num_candidates: int, masked_lm_prob: float, max_predictions_per_seq: int) -> int:
    """``masked_lm_prob`` of the candidate positions, rounded half up, in [1, max_predictions]."""
    if num_candidates == 0:
        return 0
    wanted = max(1, math.floor(num_candidates * masked_lm_prob + 0.5))
    return min(max_predictions_per_seq, wanted, num_candidates)


def _pick_whole_words(candidates: np.ndarray, word_starts: np.ndarray, budget: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Pick whole words in random order until ``budget`` pieces are picked.

    As in google's implementation a word that would overshoot the budget is skipped (a smaller
    one may still fit), so a word is never split; the count may end below the budget.
    """
    # A candidate begins a word when it is marked so or when the position before it is not a
    # candidate (a special token) — a word never spans [SEP].
    begins = word_starts[candidates]
    begins[1:] |= np.diff(candidates) != 1
    begins[0] = True
    word_of = np.cumsum(begins) - 1          # the word of each candidate position
    sizes = np.bincount(word_of).tolist()
    chosen = np.zeros(len(sizes), dtype=bool)
    total = 0
    for w in rng.permutation(len(sizes)).tolist():
        if total >= budget:
            break
        if total + sizes[w] > budget:
            continue
        chosen[w] = True
        total += sizes[w]
    return candidates[chosen[word_of]]


def _random_tokens(count: int, vocab_size: int, excluded: Sequence[int],
                   rng: np.random.Generator) -> np.ndarray:
    """Uniform token ids from the vocabulary without the ``excluded`` (sorted, unique) ids.

    A random ``[SEP]`` or ``[CLS]`` would fake a segment boundary, so special tokens are left out
    (google draws from the whole vocabulary; the difference is a handful of ids out of 30k).
    """
    excluded = [s for s in excluded if 0 <= s < vocab_size]
    draws = rng.integers(0, vocab_size - len(excluded), size=count)
    # The r-th allowed id is r + #{k : excluded[k] - k <= r} (skip each special below it).
    shifted = np.asarray(excluded, dtype=np.int64) - np.arange(len(excluded))
    return draws + np.searchsorted(shifted, draws, side="right")


def mask_tokens(input_ids: Sequence[int] | np.ndarray, *, vocab_size: int, mask_token_id: int,
                special_ids: Collection[int], rng: np.random.Generator,
                masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                whole_word_mask: bool = False, word_starts: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Apply BERT's masked-LM corruption to one sequence.

    Args:
        input_ids: 1-D token ids, ``[CLS] A [SEP] B [SEP]`` (padding, if any, must be listed in
            ``special_ids``).
        vocab_size: ids of random replacements are drawn from ``[0, vocab_size)``.
        mask_token_id: the id of ``[MASK]``.
        special_ids: ids that are never picked nor used as random replacements
            (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``...).
        rng: the only source of randomness: the same generator state gives the same result.
        masked_lm_prob: share of candidate (non-special) positions to predict.
        max_predictions_per_seq: upper bound on the predicted positions.
        whole_word_mask: pick whole words (needs ``word_starts``).
        word_starts: bool per position, True at the first piece of a word (see
            :func:`word_starts_from_pieces`; a word segmentation such as a Chinese word
            segmenter's may be given instead, then a word is all pieces up to the next start).

    Returns:
        ``(masked_ids, labels)``: int64 arrays; ``labels`` is the original id at predicted
        positions and -100 elsewhere.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    if not 0.0 < masked_lm_prob <= 1.0:
        raise PlmError(f"masked_lm_prob must be in (0, 1], got {masked_lm_prob}",
                       field="masked_lm_prob")
    excluded = sorted({int(i) for i in special_ids})
    is_special = np.zeros(input_ids.shape, dtype=bool)
    for special in excluded:  # a handful of ids: faster than np.isin on short sequences
        is_special |= input_ids == special
    candidates = np.flatnonzero(~is_special)
    budget = num_to_predict(len(candidates), masked_lm_prob, max_predictions_per_seq)
    if whole_word_mask:
        if word_starts is None:
            raise PlmError("whole word masking needs word_starts", field="word_starts")
        starts = np.asarray(word_starts, dtype=bool)
        if starts.shape != input_ids.shape:
            raise PlmError(f"word_starts has shape {starts.shape}, input_ids {input_ids.shape}",
                           field="word_starts")
        picked = _pick_whole_words(candidates, starts, budget, rng) if budget else candidates[:0]
    else:
        picked = np.sort(rng.permutation(candidates)[:budget])

    labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)
    labels[picked] = input_ids[picked]
    masked = input_ids.copy()
    draw = rng.random(len(picked))
    masked[picked[draw < 0.8]] = mask_token_id          # 80 %: [MASK]
    replace = picked[draw >= 0.9]                        # 10 %: a random token
    if len(replace):
        masked[replace] = _random_tokens(len(replace), vocab_size, excluded, rng)
    return masked, labels                                # 10 %: unchanged


__all__ = ["IGNORE_INDEX", "IS_NEXT", "NOT_NEXT", "TokenizedCorpus", "TrainingInstance",
           "create_instances",
           "instances_from_document", "iter_instances", "mask_tokens", "num_to_predict",
           "token_type_ids", "truncate_seq_pair", "word_starts_from_pieces"]
