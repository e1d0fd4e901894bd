"""The one attention core of plmkit: scaled dot-product and multi-head attention.

Every model of the lineage that attends uses this file: BERT's bidirectional self-attention,
GPT's causal self-attention, and the Transformer decoder's cross-attention (queries from the
decoder, keys and values from the encoder output).

Scaled dot-product attention (Vaswani et al., 2017)::

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Q Kᵀ scores every query against every key. The scores are divided by √d_k because for random
vectors of dimension d_k the dot product has variance d_k: unscaled, the softmax saturates and its
gradients vanish. M is an additive mask: 0 where a query may look, a very large negative number
where it may not (padding keys; future positions in a causal model), so those keys get zero weight.

Multi-head attention projects the hidden states into h smaller heads of size d_k = d_model / h,
attends in each head independently (each can learn a different relation), and concatenates.

Two paths compute the same thing: the fast path calls
``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, no (L×L) probability tensor
kept for backward); the explicit path writes the softmax out and is used when the caller asks for
the attention probabilities (visualisation) — see :func:`scaled_dot_product_attention`.

Reading order: :func:`scaled_dot_product_attention` is the formula above and
:meth:`MultiHeadAttention.forward` the paper's three steps (project and split into heads, attend,
concatenate). The machinery that makes it fast or incremental is set apart, each piece saying why
it exists: :class:`StackedProjection` (Q, K, V in one matrix multiply), :class:`PackedTokens`
and :func:`packed_attention` (every step on real tokens only, no padding, no mask) and
:class:`KeyValueCache` (one new token per decoding step).
GPT-2's attention (``models/gpt.py``) keeps its own fused ``c_attn`` weights, as its checkpoints
store them, and shares everything from the heads on (:func:`heads_of_self_attention`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plmkit.models import dropout as cpu_dropout
from plmkit.models.prepacked import PackedWeights, linear, packed_linear, version_stamp


def split_heads(states: Tensor, num_heads: int) -> Tensor:
    """(batch, length, d_model) → (batch, heads, length, d_k)."""
    batch, length, width = states.shape
    return states.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(states: Tensor) -> Tensor:
    """(batch, heads, length, d_k) → (batch, length, heads·d_k): the concatenation of the heads."""
    batch, heads, length, head_size = states.shape
    return states.transpose(1, 2).reshape(batch, length, heads * head_size)


def attention_bias(
    attention_mask: Tensor | None,
    dtype: torch.dtype,
    *,
    query_length: int | None = None,
    causal: bool = False,
    past_length: int = 0,
    device: torch.device | None = None,
) -> Tensor | None:
    """Turn a (batch, key_length) 1/0 padding mask into the additive mask M.

    Returns ``None`` when nothing is masked, so the fused kernel can take its fastest path.
    The result broadcasts to (batch, heads, query_length, key_length). With ``causal`` a query at
    position i (counting ``past_length`` cached positions before it) sees keys 0..i only.
    ``device`` places a causal-only mask (no padding mask to take the device from).
    """
    if attention_mask is None and not causal:
        return None
    if (not causal and attention_mask.dim() == 2 and not torch.compiler.is_compiling()
            and bool(attention_mask.all())):
        return None  # (the check reads a value back: skipped inside torch.compile graphs)
    keep: Tensor | None = None
    if attention_mask is not None:
        if attention_mask.dim() == 2:
            keep = attention_mask[:, None, None, :].bool()
        else:  # already (batch, 1 or heads, query_length, key_length)
            keep = attention_mask.bool()
    if causal:
        if query_length is None:
            raise ValueError("a causal mask needs query_length")
        key_length = past_length + query_length
        if attention_mask is not None:
            device = attention_mask.device
        positions = torch.arange(key_length, device=device)
        queries_at = torch.arange(past_length, key_length, device=device)
        future_blocked = positions[None, :] <= queries_at[:, None]  # (query_length, key_length)
        keep = future_blocked[None, None] if keep is None else keep & future_blocked[None, None]
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(
        ~keep, torch.finfo(dtype).min
    )


def scaled_dot_product_attention(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    bias: Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout: float = 0.0,
    return_probabilities: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(Q Kᵀ / √d_k + M) V over (batch, heads, length, d_k) tensors.

    ``bias`` is the additive mask M from :func:`attention_bias`; ``is_causal`` asks the fused
    kernel for its built-in causal mask instead (only valid without a bias and without a cache).
    Returns the attended values and, when ``return_probabilities``, the attention weights.
    """
    # With dropout on the CPU, PyTorch's kernel falls back to its unfused path and draws the mask
    # one element at a time: written out here, the mask is drawn four elements per number.
    written_out = dropout > 0.0 and cpu_dropout.cheap_mask_applies(queries)
    if not return_probabilities and not written_out:
        context = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=bias, dropout_p=dropout, is_causal=is_causal
        )
        return context, None
    scale = 1.0 / math.sqrt(queries.size(-1))
    scores = queries @ keys.transpose(-2, -1)
    if is_causal:
        length_q, length_k = scores.shape[-2:]
        blocked = torch.ones(length_q, length_k, dtype=torch.bool, device=scores.device).triu(
            1 + length_k - length_q
        )
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    # M + scores·scale in one pass (the matrix product's output is not needed for backward)
    scores = scores.mul_(scale) if bias is None else torch.add(bias, scores, alpha=scale)
    probabilities = scores.softmax(dim=-1)
    context = cpu_dropout.dropout(probabilities, dropout) @ values
    return context, probabilities


def masked_mean(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of (batch, length, width) states over the real tokens of each row (1s in the mask)."""
    weights = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


@dataclass
class PackedTokens:
    """Where the real (non-padding) tokens of a padded (batch, length) batch sit.

    Everything in a Transformer layer except attention itself works token by token (projections,
    feed-forward, LayerNorm, residuals), so it can run on the real tokens only, packed into one
    (tokens, width) matrix: padding costs no matrix multiply. Attention mixes the tokens of one
    sequence, whose packed rows are contiguous: :func:`packed_attention` attends each run of
    rows on its own. :func:`unpack` restores the (batch, length) layout (zeros at padding) for
    the paths that need it (attention probabilities, the final output) and :func:`pack` leaves
    it.

    The packed matrix has ``rows`` ≥ the real tokens: zero rows are appended so that its height
    is one of a few values (:func:`packed_rows`). oneDNN builds and keeps a kernel, with its
    scratch memory, per matrix shape; with a height per batch, inference over a large file grew
    to 1.5 GB (MiniLM, 900 batches), with ≤ 32 heights per doubling it stays level (683 MB). The
    extra rows cost at most 1/32 more work (2–4% measured at 516 tokens) and are never attended
    to or returned.
    """

    index: Tensor  # flat positions (batch·length) of the real tokens, in order
    batch: int
    length: int
    # real tokens of each row: row i's tokens are rows sum(lengths[:i]) … of the packed matrix
    lengths: list[int] | None = None
    rows: int | None = None  # height of the packed matrix (None: the real tokens, no extra)

    @classmethod
    def from_mask(cls, attention_mask: Tensor) -> "PackedTokens":
        batch, length = attention_mask.shape
        index = attention_mask.reshape(-1).nonzero().squeeze(1)
        return cls(index, batch, length, attention_mask.count_nonzero(1).tolist(),
                   packed_rows(index.numel()))

    @property
    def num_tokens(self) -> int:
        return self.index.numel()

    @property
    def height(self) -> int:
        return self.num_tokens if self.rows is None else self.rows


def packed_rows(tokens: int) -> int:
    """``tokens`` rounded up to a multiple of 8, or of 1/32 of its power of two above 256: at
    most 32 distinct heights per doubling, at most 1/32 (and 7 rows) of extra work."""
    step = max(8, 1 << max(0, tokens.bit_length() - 6))
    return -(-tokens // step) * step


def pack(states: Tensor, layout: PackedTokens) -> Tensor:
    """(batch, length, width) → (rows, width): the real tokens, then zero rows up to
    ``layout.height``."""
    real = states.reshape(layout.batch * layout.length, -1).index_select(0, layout.index)
    extra = layout.height - layout.num_tokens
    return real if extra <= 0 else torch.cat([real, real.new_zeros(extra, real.size(-1))])


def packed_attention(queries: Tensor, keys: Tensor, values: Tensor, layout: PackedTokens,
                     num_heads: int) -> Tensor:
    """Self-attention of every sequence over its own real tokens, on packed (tokens, d_model)
    projections; returns the concatenated heads, packed the same way.

    The padded path pads every sequence to the batch's longest and masks the padding keys: for
    sentences of 15 to 73 tokens, three quarters of its (length × length) scores are masked
    work, and the fused kernel, at 32- or 64-wide heads, spends more on the mask and the
    padded blocks than on the real ones. Attending one sequence at a time needs no mask (its
    keys are all real), and since the packed rows of a sequence are contiguous, each is a
    view: no scatter into the padded layout before attention and no gather after (the
    variable-length form of FlashAttention's ``cu_seqlens``). The real tokens' outputs equal
    the padded path's; padding positions get none (packed layouts have none).

    Without dropout only: each sequence is then one fused kernel call. Attention dropout is
    written out (:func:`scaled_dot_product_attention`), five or six small operations forward
    and as many backward per sequence, and one batched call over the padded layout is faster.
    """
    if layout.lengths is None:
        raise ValueError("packed attention needs the row lengths (PackedTokens.from_mask)")
    width = queries.size(-1)
    context = queries.new_empty(queries.size(0), width)
    start = 0
    for length in layout.lengths:
        end = start + length
        if length:
            rows = slice(start, end)
            attended = F.scaled_dot_product_attention(
                *(split_heads(t[rows].unsqueeze(0), num_heads) for t in (queries, keys, values)))
            context[rows] = merge_heads(attended).squeeze(0)
        start = end
    context[start:] = 0  # the extra rows of PackedTokens.rows: no sequence, no attention
    return context


def unpack(packed: Tensor, layout: PackedTokens) -> Tensor:
    """(rows, width) → (batch, length, width) with zeros at the padding positions (the extra
    rows of :attr:`PackedTokens.rows` are dropped)."""
    if packed.size(0) != layout.num_tokens:
        packed = packed[:layout.num_tokens]
    full = packed.new_zeros(layout.batch * layout.length, packed.size(-1))
    full = full.index_copy(0, layout.index, packed)
    return full.view(layout.batch, layout.length, -1)


@dataclass
class KeyValueCache:
    """Keys and values of the positions already decoded, one per attention layer.

    Incremental decoding (GPT generation, Transformer beam search) feeds one new token per step;
    its query attends to the cached keys/values, so each step costs O(length) instead of
    recomputing the whole prefix at O(length²).
    """

    keys: Tensor | None = None
    values: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.size(-2)

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat([self.keys, keys], dim=-2)
            self.values = torch.cat([self.values, values], dim=-2)
        return self.keys, self.values

    def reorder(self, beam_indices: Tensor) -> None:
        """Follow the beams that survived a beam-search step."""
        if self.keys is not None:
            self.keys = self.keys.index_select(0, beam_indices)
            self.values = self.values.index_select(0, beam_indices)


@dataclass
class AttentionOutput:
    context: Tensor
    probabilities: Tensor | None = None


def heads_of_self_attention(queries: Tensor, keys: Tensor, values: Tensor, num_heads: int,
                            cache: KeyValueCache | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Projected Q, K, V (batch, length, d_model) split into heads; during incremental decoding
    K and V are appended to ``cache`` and the whole cached K, V come back."""
    keys, values = split_heads(keys, num_heads), split_heads(values, num_heads)
    if cache is not None:
        keys, values = cache.append(keys, values)
    return split_heads(queries, num_heads), keys, values


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., 2017, section 3.2.2)::

        MultiHead(Q, K, V) = Concat(head_1, …, head_h)
        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

    Self-attention: call with ``hidden_states`` only (Q, K and V all come from it).
    Cross-attention: also pass ``key_value_states`` (the encoder output, where K and V come from).
    The output projection W^O belongs to the caller (BERT names it ``output.dense``). Parameter
    names (``query``, ``key``, ``value``) are Hugging Face BERT's, so BERT checkpoints load
    unchanged.

    :meth:`forward` is the paper's three steps. The rest serves speed and decoding, each piece
    set apart: the stacked projection weights (:class:`StackedProjection`), packed real tokens
    (:class:`PackedTokens`), and the key/value caches of incremental decoding.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0,
                 key_value_size: int | None = None, bias: bool = True) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        key_value_size = key_value_size or hidden_size
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.key = nn.Linear(key_value_size, hidden_size, bias=bias)
        self.value = nn.Linear(key_value_size, hidden_size, bias=bias)
        # Q, K, V (or K, V of cross-attention) in one matrix multiply; off: three separate ones.
        self.fuse_qkv = True
        # Set where the weights cannot be stacked on the fly (dynamic int8: plmkit.export.
        # runtime.dynamic_int8): one module over [W^Q; W^K; W^V] for self-attention.
        self.qkv: nn.Module | None = None
        # Packed real tokens: attend one sequence at a time (packed_attention); off: scatter
        # into the padded layout and run the masked kernel over the whole batch.
        self.per_sequence = True
        self._stacked = StackedProjection()

    def forward(
        self,
        hidden_states: Tensor,
        bias: Tensor | None = None,
        *,
        key_value_states: Tensor | None = None,
        is_causal: bool = False,
        cache: KeyValueCache | None = None,
        static_keys_values: tuple[Tensor, Tensor] | None = None,
        return_probabilities: bool = False,
        packed: PackedTokens | None = None,
    ) -> AttentionOutput:
        """Attend from ``hidden_states`` to itself, or to ``key_value_states`` (cross-attention).

        ``bias`` is the additive mask M (:func:`attention_bias`); ``is_causal`` asks for the
        causal mask instead. ``cache`` extends self-attention keys/values step by step;
        ``static_keys_values`` reuses encoder keys/values already projected by
        :meth:`project_keys_values`. ``packed``: ``hidden_states`` holds the real tokens only,
        (tokens, width), in and out (see :class:`PackedTokens`).
        """
        dropout = self.dropout if self.training else 0.0
        if (packed is not None and self.per_sequence and packed.lengths is not None
                and dropout == 0.0 and not return_probabilities and key_value_states is None
                and static_keys_values is None and cache is None):
            # The same three steps, one sequence at a time over its real tokens (see
            # packed_attention): no padded layout, no mask.
            return AttentionOutput(packed_attention(*self.project_self(hidden_states), packed,
                                                    self.num_heads))
        # 1. Q W^Q, K W^K, V W^V, split into h heads of d_k = d_model / h.
        queries, keys, values = self.heads(hidden_states, key_value_states, static_keys_values,
                                           cache, packed)
        # 2. Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V, in every head at once.
        context, probabilities = scaled_dot_product_attention(
            queries, keys, values, bias, is_causal=is_causal, dropout=dropout,
            return_probabilities=return_probabilities)
        # 3. Concat(head_1, …, head_h).
        context = merge_heads(context)
        return AttentionOutput(pack(context, packed) if packed is not None else context,
                               probabilities)

    def heads(self, hidden_states: Tensor, key_value_states: Tensor | None = None,
              static_keys_values: tuple[Tensor, Tensor] | None = None,
              cache: KeyValueCache | None = None, packed: PackedTokens | None = None,
              ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values, (batch, heads, length, d_k) each."""
        cross = key_value_states is not None or static_keys_values is not None
        if packed is not None and (cross or cache is not None):
            raise ValueError("packed tokens serve plain self-attention only")
        if cross:
            queries = split_heads(linear(self.query, hidden_states), self.num_heads)
            if static_keys_values is None:
                static_keys_values = self.project_keys_values(key_value_states)
            return (queries, *static_keys_values)
        queries, keys, values = self.project_self(hidden_states, packed)
        return heads_of_self_attention(queries, keys, values, self.num_heads, cache)

    def project_keys_values(self, key_value_states: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder keys/values for cross-attention, split into heads: a decoder computes them
        once per source sentence and passes them back as ``static_keys_values``."""
        keys, values = self.project_memory(key_value_states)
        return split_heads(keys, self.num_heads), split_heads(values, self.num_heads)

    # ----------------------------------------------------------------------------- projections
    def project_self(self, hidden_states: Tensor, packed: PackedTokens | None = None,
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """x W^Q, x W^K, x W^V, (…, d_model) each. ``packed``: x holds the real tokens only;
        the projections come back in the (batch, length) layout attention needs."""
        if self.fuse_qkv and self.qkv is not None:
            projected = self.qkv(hidden_states)
        elif not self.fuse_qkv or not self._stackable():
            parts = tuple(linear(p, hidden_states) for p in (self.query, self.key, self.value))
            return parts if packed is None else tuple(unpack(t, packed) for t in parts)
        else:
            projected = self._stacked.linear("qkv", (self.query, self.key, self.value),
                                             hidden_states)
        if packed is not None:  # one scatter of the (tokens, 3·d_model) product, not three
            projected = unpack(projected, packed)
        return projected.chunk(3, dim=-1)

    def project_memory(self, key_value_states: Tensor) -> tuple[Tensor, Tensor]:
        """m W^K, m W^V of the encoder output m (cross-attention)."""
        if not self.fuse_qkv or not self._stackable():
            return linear(self.key, key_value_states), linear(self.value, key_value_states)
        projected = self._stacked.linear("kv", (self.key, self.value), key_value_states)
        keys, values = projected.chunk(2, dim=-1)
        return keys, values

    def _stackable(self) -> bool:
        """Plain weight tensors to stack. PyTorch's dynamic int8 quantization swaps the linears
        for modules whose ``weight`` is a method over packed int8 data: those run one by one."""
        return isinstance(self.query.weight, Tensor)


class StackedProjection:
    """Projection weights stacked into one matrix, and the copy kept between inference calls.

    Why stack: one (3·d × d) matrix multiply reads the activations once and launches one kernel
    instead of three, which is measurably faster for the small widths of this project. Why keep:
    stacking copies 3·d² weights. Under autograd the copy is made on every call (gradients must
    flow back to W^Q, W^K, W^V); at inference the weights do not change between batches, so the
    copy is kept and remade only when a weight's version counter (bumped by every in-place
    update: an optimizer step, ``load_state_dict``) or its storage (``.to()``) changes. A plain
    object, not a module: the copy is never saved, moved or trained.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[int, ...], Tensor, Tensor | None]] = {}
        self._packed: dict[str, PackedWeights] = {}

    def clear(self) -> None:
        """Drop the kept copies (e.g. once the linears are replaced by quantized ones)."""
        self._kept.clear()
        self._packed.clear()

    def linear(self, which: str, parts: tuple[nn.Linear, ...], inputs: Tensor) -> Tensor:
        """``inputs`` times the stacked weights (plus biases): at inference through a packed
        copy of the stacked matrix (:mod:`plmkit.models.prepacked`), else ``F.linear``."""
        weight, bias = self.get(which, parts)
        out = packed_linear(inputs, weight, bias, self._packed.setdefault(which, PackedWeights()))
        return F.linear(inputs, weight, bias) if out is None else out

    def get(self, which: str, parts: tuple[nn.Linear, ...]) -> tuple[Tensor, Tensor | None]:
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            self._kept.pop(which, None)
            self._packed.pop(which, None)  # the packed copy lives as long as its stacked source
            return self.stack(parts)
        stamp = tuple(part for p in parts for t in (p.weight, p.bias) if t is not None
                      for part in version_stamp(t))
        kept = self._kept.get(which)
        if kept is None or kept[0] != stamp:
            with torch.no_grad():
                weight, bias = self.stack(parts)
            kept = self._kept[which] = (stamp, weight, bias)
            self._packed.pop(which, None)
        return kept[1], kept[2]

    @staticmethod
    def stack(parts: tuple[nn.Linear, ...]) -> tuple[Tensor, Tensor | None]:
        weight = torch.cat([p.weight for p in parts])
        bias = None if parts[0].bias is None else torch.cat([p.bias for p in parts])
        return weight, bias


__all__ = [
    "AttentionOutput",
    "KeyValueCache",
    "MultiHeadAttention",
    "PackedTokens",
    "StackedProjection",
    "attention_bias",
    "heads_of_self_attention",
    "masked_mean",
    "merge_heads",
    "pack",
    "packed_attention",
    "packed_rows",
    "unpack",
    "scaled_dot_product_attention",
    "split_heads",
]
